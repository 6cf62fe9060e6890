// Reads an account's app.bsky views through its PDS with the official TypeScript client
// (@atproto/api's AtpAgent), which checks every answer against the lexicons.
//
//   <node 22> tests/interop/timeline_client.mjs <pds-url> <handle> <password>
//
// Prints ONE JSON line: {"ok": true, "timeline": [texts], "profile": {...}, "thread": [...]}
// or {"ok": false, "error": ...} with exit status 1.
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const peersDir =
  process.env.STRATA_PEERS_DIR ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers')
const [service, identifier, password] = process.argv.slice(2)
if (!service || !identifier || !password) {
  process.stderr.write('usage: timeline_client.mjs <pds-url> <handle> <password>\n')
  process.exit(2)
}
const require = createRequire(path.join(peersDir, 'package.json'))
const { AtpAgent } = await import(pathToFileURL(require.resolve('@atproto/api')).href)

try {
  const agent = new AtpAgent({ service })
  await agent.login({ identifier, password })
  const timeline = await agent.getTimeline({ limit: 50 })
  const texts = timeline.data.feed.map((item) => item.post.record.text)
  const first = timeline.data.feed.find((item) => item.post.replyCount > 0)
  const thread = first
    ? await agent.getPostThread({ uri: first.post.uri })
    : { data: { thread: { replies: [] } } }
  const profile = await agent.getProfile({ actor: identifier })
  const author = await agent.getAuthorFeed({ actor: identifier, filter: 'posts_no_replies' })
  const notifications = await agent.listNotifications()
  process.stdout.write(
    JSON.stringify({
      ok: true,
      timeline: texts,
      reasons: timeline.data.feed.map((item) => item.reason?.$type ?? null),
      thread: thread.data.thread.replies.map((reply) => reply.post.record.text),
      profile: {
        handle: profile.data.handle,
        followsCount: profile.data.followsCount,
        followersCount: profile.data.followersCount,
      },
      authorFeed: author.data.feed.length,
      notifications: notifications.data.notifications.map((n) => n.reason),
    }) + '\n',
  )
} catch (err) {
  process.stdout.write(
    JSON.stringify({ ok: false, error: { name: err?.error, status: err?.status, message: String(err?.message ?? err) } }) + '\n',
  )
  process.exit(1)
}
