// Drives a PDS with the official TypeScript client (@atproto/api's AtpAgent).
//
//   <node 22> tests/interop/api_client.mjs <pds-url>
//
// Uses the packages installed by bench/peers/setup.sh (found next to this repository's
// bench/peers/package.json, or in $STRATA_PEERS_DIR), so it runs from any working directory.
// It only calls methods the PDS answers itself: app.bsky.actor.getProfile and the other
// AppView reads are proxied, and there is no AppView here.
//
// Prints ONE JSON line on stdout:
//   {"ok": true, "steps": {<step>: <summary>, ...}, "did": ..., "handle": ..., "uris": [...]}
// On failure: {"ok": false, "failed_step": ..., "error": {"name", "status", "message"}, "steps": ...}
// (also on stderr with the stack) and the exit status is 1. Usage errors exit with 2.
import { randomBytes } from 'node:crypto'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import zlib from 'node:zlib'

const peersDir =
  process.env.STRATA_PEERS_DIR ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers')

const service = process.argv[2]
if (!service || !/^https?:\/\//.test(service)) {
  process.stderr.write('usage: api_client.mjs <pds-url>\n')
  process.exit(2)
}

let api
try {
  const require = createRequire(path.join(peersDir, 'package.json'))
  api = await import(pathToFileURL(require.resolve('@atproto/api')).href)
} catch (err) {
  process.stderr.write(
    `api_client.mjs: cannot load @atproto/api from ${peersDir}/node_modules ` +
      `(run bash bench/peers/setup.sh): ${err?.message ?? err}\n`,
  )
  process.exit(2)
}
const { AtpAgent, RichText } = api

// --- helpers ---------------------------------------------------------------------------------

class StepError extends Error {}

function check(condition, message) {
  if (!condition) throw new StepError(message)
}

const steps = {}
let currentStep = null

async function step(name, fn) {
  currentStep = name
  const summary = await fn()
  steps[name] = summary ?? true
  currentStep = null
  return summary
}

function describeError(err) {
  const out = {
    name: err?.error ?? err?.name ?? 'Error',
    status: typeof err?.status === 'number' ? err.status : null,
    message: err?.message ?? String(err),
  }
  if (err instanceof StepError) out.name = 'CheckFailed'
  // Network failures: the useful part (e.g. ECONNREFUSED) is at the end of the cause chain.
  let cause = err?.cause
  while (cause?.cause) cause = cause.cause
  if (cause?.message) out.cause = cause.code ? `${cause.code}: ${cause.message}` : cause.message
  return out
}

// A valid 2x2 RGBA PNG built here (signature, IHDR, IDAT, IEND; CRCs from zlib).
function makePng() {
  const chunk = (type, data) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(zlib.crc32(body))
    return Buffer.concat([len, body, crc])
  }
  const width = 2
  const height = 2
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 6 // RGBA
  const rows = []
  for (let y = 0; y < height; y++) {
    rows.push(Buffer.from([0])) // filter: none
    for (let x = 0; x < width; x++) rows.push(Buffer.from([255 * x, 128, 255 * y, 255]))
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

// A CAR v1 file starts with a varint header length, then a DAG-CBOR map {roots, version}.
function looksLikeCar(bytes) {
  let len = 0
  let shift = 0
  let i = 0
  for (; i < bytes.length && i < 9; i++) {
    len += (bytes[i] & 0x7f) * 2 ** shift
    shift += 7
    if ((bytes[i] & 0x80) === 0) break
  }
  i += 1
  if (len < 1 || i + len > bytes.length) return false
  const header = Buffer.from(bytes.subarray(i, i + len))
  return header[0] === 0xa2 && header.includes('roots') && header.includes('version')
}

const rkeyOf = (uri) => uri.split('/').pop()

// --- the scenario ----------------------------------------------------------------------------

const tag = randomBytes(5).toString('hex')
const password = `pw-${randomBytes(12).toString('hex')}`
const alice = { handle: `ts${tag}a.test`, email: `ts${tag}a@example.test`, password }
const bob = { handle: `ts${tag}b.test`, email: `ts${tag}b@example.test`, password }
const uris = []

const agent = new AtpAgent({ service })
const other = new AtpAgent({ service })
let did = null

try {
  await step('createAccount', async () => {
    const res = await agent.createAccount(alice)
    check(res.data.did.startsWith('did:'), `createAccount returned did ${res.data.did}`)
    check(res.data.handle === alice.handle, `createAccount returned handle ${res.data.handle}`)
    check(agent.hasSession, 'no session after createAccount')
    did = res.data.did
    return { did: res.data.did, handle: res.data.handle }
  })

  await step('createSecondAccount', async () => {
    const res = await other.createAccount(bob)
    check(res.data.did !== did, 'second account got the same DID')
    return { did: res.data.did, handle: res.data.handle }
  })

  await step('login', async () => {
    const fresh = new AtpAgent({ service })
    const res = await fresh.login({ identifier: alice.handle, password })
    check(res.data.did === did, `login returned did ${res.data.did}`)
    check(typeof res.data.accessJwt === 'string' && res.data.accessJwt.length > 0, 'no accessJwt')
    check(typeof res.data.refreshJwt === 'string' && res.data.refreshJwt.length > 0, 'no refreshJwt')
    // Continue with the logged-in agent.
    await agent.resumeSession(fresh.session)
    return { did: res.data.did, handle: res.data.handle }
  })

  await step('getSession', async () => {
    const res = await agent.com.atproto.server.getSession()
    check(res.data.did === did, `getSession did ${res.data.did}`)
    check(res.data.handle === alice.handle, `getSession handle ${res.data.handle}`)
    return { did: res.data.did, handle: res.data.handle, email: res.data.email ?? null }
  })

  const link = 'https://atproto.com/specs/repository'
  const post = await step('post', async () => {
    const rt = new RichText({ text: `interop test ${tag} → ${link}` })
    rt.detectFacetsWithoutResolution()
    const facet = rt.facets?.[0]
    check(
      facet?.features?.[0]?.$type === 'app.bsky.richtext.facet#link' &&
        facet.features[0].uri === link,
      `link facet not detected: ${JSON.stringify(rt.facets)}`,
    )
    const res = await agent.post({ text: rt.text, facets: rt.facets, langs: ['en'] })
    check(res.uri.startsWith(`at://${did}/app.bsky.feed.post/`), `post uri ${res.uri}`)
    uris.push(res.uri)
    return { uri: res.uri, cid: res.cid, facet: facet.index }
  })

  const like = await step('like', async () => {
    const res = await agent.like(post.uri, post.cid)
    check(res.uri.startsWith(`at://${did}/app.bsky.feed.like/`), `like uri ${res.uri}`)
    uris.push(res.uri)
    return { uri: res.uri, cid: res.cid }
  })

  await step('follow', async () => {
    const res = await agent.follow(steps.createSecondAccount.did)
    check(res.uri.startsWith(`at://${did}/app.bsky.graph.follow/`), `follow uri ${res.uri}`)
    uris.push(res.uri)
    return { uri: res.uri, cid: res.cid, subject: steps.createSecondAccount.did }
  })

  const png = makePng()
  let blobRef = null
  const blob = await step('uploadBlob', async () => {
    const res = await agent.uploadBlob(png, { encoding: 'image/png' })
    blobRef = res.data.blob
    check(blobRef?.mimeType === 'image/png', `uploadBlob mimeType ${blobRef?.mimeType}`)
    check(blobRef.size === png.length, `uploadBlob size ${blobRef.size} != ${png.length}`)
    return { cid: blobRef.ref.toString(), size: blobRef.size, mimeType: blobRef.mimeType }
  })

  const imagePost = await step('postWithImage', async () => {
    const res = await agent.post({
      text: `image ${tag}`,
      embed: {
        $type: 'app.bsky.embed.images',
        images: [{ image: blobRef, alt: 'a 2x2 test image', aspectRatio: { width: 2, height: 2 } }],
      },
    })
    uris.push(res.uri)
    return { uri: res.uri, cid: res.cid }
  })

  await step('getRecord', async () => {
    const res = await agent.com.atproto.repo.getRecord({
      repo: did,
      collection: 'app.bsky.feed.post',
      rkey: rkeyOf(imagePost.uri),
    })
    check(res.data.uri === imagePost.uri, `getRecord uri ${res.data.uri}`)
    check(res.data.cid === imagePost.cid, `getRecord cid ${res.data.cid} != ${imagePost.cid}`)
    const image = res.data.value?.embed?.images?.[0]?.image
    const imageCid = image?.ref?.toString?.() ?? image?.ref?.$link
    check(imageCid === blob.cid, `embedded blob ${JSON.stringify(image)} != ${blob.cid}`)
    const first = await agent.com.atproto.repo.getRecord({
      repo: did,
      collection: 'app.bsky.feed.post',
      rkey: rkeyOf(post.uri),
    })
    const facet = first.data.value?.facets?.[0]
    check(facet?.features?.[0]?.uri === link, `stored facet ${JSON.stringify(facet)}`)
    return { uri: res.data.uri, cid: res.data.cid, blob: imageCid }
  })

  await step('listRecords', async () => {
    const res = await agent.com.atproto.repo.listRecords({
      repo: did,
      collection: 'app.bsky.feed.post',
      limit: 10,
    })
    const listed = res.data.records.map((r) => r.uri).sort()
    const expected = [post.uri, imagePost.uri].sort()
    check(
      JSON.stringify(listed) === JSON.stringify(expected),
      `listRecords ${JSON.stringify(listed)} != ${JSON.stringify(expected)}`,
    )
    return { count: listed.length }
  })

  await step('describeRepo', async () => {
    const res = await agent.com.atproto.repo.describeRepo({ repo: did })
    check(res.data.did === did && res.data.handle === alice.handle, 'describeRepo did/handle')
    check(res.data.handleIsCorrect === true, `handleIsCorrect ${res.data.handleIsCorrect}`)
    for (const c of ['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.graph.follow']) {
      check(res.data.collections.includes(c), `describeRepo collections lack ${c}`)
    }
    return { collections: res.data.collections, handleIsCorrect: res.data.handleIsCorrect }
  })

  const commit = await step('getLatestCommit', async () => {
    const res = await agent.com.atproto.sync.getLatestCommit({ did })
    check(typeof res.data.cid === 'string' && typeof res.data.rev === 'string', 'commit cid/rev')
    return { cid: res.data.cid, rev: res.data.rev }
  })

  await step('getRepo', async () => {
    const res = await agent.com.atproto.sync.getRepo({ did })
    const bytes = res.data
    check(bytes instanceof Uint8Array, `getRepo returned ${typeof bytes}`)
    check(looksLikeCar(bytes), 'getRepo bytes do not start like a CAR v1 file')
    return { bytes: bytes.length, contentType: res.headers['content-type'] ?? null, rev: commit.rev }
  })

  await step('putPreferences', async () => {
    const feed = 'at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.generator/whats-hot'
    await agent.app.bsky.actor.putPreferences({
      preferences: [
        { $type: 'app.bsky.actor.defs#adultContentPref', enabled: true },
        {
          $type: 'app.bsky.actor.defs#savedFeedsPrefV2',
          items: [{ id: `feed-${tag}`, type: 'feed', value: feed, pinned: true }],
        },
      ],
    })
    return { count: 2 }
  })

  await step('getPreferences', async () => {
    const res = await agent.app.bsky.actor.getPreferences()
    const types = res.data.preferences.map((p) => p.$type).sort()
    const adult = res.data.preferences.find((p) => p.$type === 'app.bsky.actor.defs#adultContentPref')
    const saved = res.data.preferences.find((p) => p.$type === 'app.bsky.actor.defs#savedFeedsPrefV2')
    check(adult?.enabled === true, `adultContentPref ${JSON.stringify(adult)}`)
    check(saved?.items?.[0]?.id === `feed-${tag}`, `savedFeedsPrefV2 ${JSON.stringify(saved)}`)
    // The agent's own parser (BskyPreferences) reads the same data.
    const parsed = await agent.getPreferences()
    check(parsed.moderationPrefs.adultContentEnabled === true, 'agent.getPreferences adult content')
    check(
      parsed.savedFeeds.some((f) => f.id === `feed-${tag}`),
      `agent.getPreferences savedFeeds ${JSON.stringify(parsed.savedFeeds)}`,
    )
    return { types }
  })

  await step('deleteLike', async () => {
    await agent.deleteLike(like.uri)
    const res = await agent.com.atproto.repo.listRecords({ repo: did, collection: 'app.bsky.feed.like' })
    check(res.data.records.length === 0, `likes left: ${res.data.records.length}`)
    let gone = false
    try {
      await agent.com.atproto.repo.getRecord({
        repo: did,
        collection: 'app.bsky.feed.like',
        rkey: rkeyOf(like.uri),
      })
    } catch (err) {
      gone = err?.status === 400 || err?.status === 404
      if (!gone) throw err
    }
    check(gone, 'deleted like still readable')
    return { uri: like.uri }
  })

  await step('refreshSession', async () => {
    const before = agent.session
    const res = await agent.sessionManager.refreshSession()
    check(res.data.did === did, `refreshSession did ${res.data.did}`)
    check(agent.session?.refreshJwt !== before.refreshJwt, 'refresh token did not rotate')
    const after = await agent.com.atproto.server.getSession()
    check(after.data.did === did, 'getSession after refresh')
    return { did: res.data.did, rotated: true }
  })
} catch (err) {
  const error = describeError(err)
  process.stdout.write(
    JSON.stringify({ ok: false, failed_step: currentStep, error, steps, did, uris }) + '\n',
  )
  process.stderr.write(
    `api_client.mjs: step ${currentStep} failed: ${error.name} (${error.status ?? 'no status'}): ` +
      `${error.message}\n${err?.stack ?? ''}\n`,
  )
  process.exit(1)
}

process.stdout.write(
  JSON.stringify({ ok: true, steps, did, handle: alice.handle, uris }) + '\n',
)
