// Makes the calls the official Bluesky app makes in normal use, with the official TypeScript
// client (@atproto/api), which checks every answer against the lexicons: threads (V2 and the
// "other" replies), bookmarks, notification preferences, push registration, suggestions, known
// followers, quotes, feeds, trending topics and the runtime configuration through the PDS's
// proxy (as the app does, naming the AppView in atproto-proxy), a report with no proxy header,
// and an upload with a service token as a video service makes it.
//
//   <node 22> tests/interop/app_client.mjs <pds-url> <handle> <password> <appview-did> <json>
//
// <json> names what to read: {"root": uri, "quoted": {uri, cid}, "friend": did, "pds": did}.
// Prints ONE JSON line: {"ok": true, ...what was read} or {"ok": false, "error": ...}.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const peersDir =
  process.env.STRATA_PEERS_DIR ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers')
const [service, identifier, password, appviewDid, named] = process.argv.slice(2)
if (!service || !identifier || !password || !appviewDid || !named) {
  process.stderr.write('usage: app_client.mjs <pds-url> <handle> <password> <appview-did> <json>\n')
  process.exit(2)
}
const { root, quoted, friend, pds } = JSON.parse(named)
const require = createRequire(path.join(peersDir, 'package.json'))
const { AtpAgent } = await import(pathToFileURL(require.resolve('@atproto/api')).href)

try {
  const plain = new AtpAgent({ service })
  await plain.login({ identifier, password })
  const agent = plain.clone()
  agent.configureProxy(`${appviewDid}#bsky_appview`)
  const bsky = agent.app.bsky
  const out = { ok: true }

  const thread = await bsky.unspecced.getPostThreadV2({ anchor: root, sort: 'newest' })
  out.thread = thread.data.thread.map((item) => [item.depth, item.value.$type, item.value.post?.record.text ?? null])
  out.hasOtherReplies = thread.data.hasOtherReplies
  out.threadgate = thread.data.threadgate?.uri ?? null
  const other = await bsky.unspecced.getPostThreadOtherV2({ anchor: root })
  out.other = other.data.thread.map((item) => [item.depth, item.value.hiddenByThreadgate])

  await bsky.bookmark.createBookmark({ uri: quoted.uri, cid: quoted.cid })
  const bookmarks = await bsky.bookmark.getBookmarks({})
  out.bookmarks = bookmarks.data.bookmarks.map((b) => b.item.uri)
  const post = (await bsky.feed.getPosts({ uris: [quoted.uri] })).data.posts[0]
  out.bookmarked = [post.bookmarkCount, post.viewer.bookmarked]
  await bsky.bookmark.deleteBookmark({ uri: quoted.uri })
  out.bookmarksAfter = (await bsky.bookmark.getBookmarks({})).data.bookmarks.length

  const reply = { include: 'follows', list: true, push: false }
  const put = await bsky.notification.putPreferencesV2({ reply })
  out.putReply = put.data.preferences.reply
  out.preferences = (await bsky.notification.getPreferences({})).data.preferences.reply
  const device = { serviceDid: appviewDid, token: 'push-token', platform: 'web', appId: 'bsky.app' }
  await bsky.notification.registerPush(device)
  await bsky.notification.unregisterPush(device)

  out.suggestions = (await bsky.actor.getSuggestions({})).data.actors.map((a) => a.handle)
  const similar = await bsky.graph.getSuggestedFollowsByActor({ actor: friend })
  out.similar = similar.data.suggestions.map((a) => a.handle)
  const known = await bsky.graph.getKnownFollowers({ actor: friend })
  out.known = known.data.followers.map((a) => a.handle)
  out.quotes = (await bsky.feed.getQuotes({ uri: quoted.uri })).data.posts.map((p) => p.record.text)
  const popular = await bsky.unspecced.getPopularFeedGenerators({})
  out.popular = popular.data.feeds.map((f) => f.displayName)
  out.suggestedFeeds = (await bsky.unspecced.getSuggestedFeeds({})).data.feeds.length
  out.trending = (await bsky.unspecced.getTrendingTopics({})).data
  out.config = (await bsky.unspecced.getConfig({})).data

  // A report with no service named: the PDS sends it to its report service.
  const report = await plain.com.atproto.moderation.createReport({
    reasonType: 'com.atproto.moderation.defs#reasonSpam',
    subject: { $type: 'com.atproto.repo.strongRef', uri: quoted.uri, cid: quoted.cid },
  })
  out.reportedBy = report.data.reportedBy

  // A video service writing back: a token the account asked for, and no session.
  const lxm = 'com.atproto.repo.uploadBlob'
  const { token } = (await plain.com.atproto.server.getServiceAuth({ aud: pds, lxm })).data
  const video = new AtpAgent({ service })
  const uploaded = await video.com.atproto.repo.uploadBlob(new Uint8Array(4096).fill(7), {
    encoding: 'video/mp4',
    headers: { authorization: `Bearer ${token}` },
  })
  out.uploaded = [uploaded.data.blob.mimeType, uploaded.data.blob.size]

  process.stdout.write(JSON.stringify(out) + '\n')
} catch (err) {
  process.stdout.write(
    JSON.stringify({ ok: false, error: { name: err?.error, status: err?.status, message: String(err?.message ?? err) } }) + '\n',
  )
  process.exit(1)
}
