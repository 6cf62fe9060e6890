// Signs in to a PDS with the official OAuth client (@atproto/oauth-client-node, a loopback
// client), then calls the PDS with the DPoP-bound token through @atproto/api's Agent.
//
//   <node 22> tests/interop/oauth_client.mjs <handle> <pds-url> <plc-url>
//
// 1. Prints {"authorize": <url>, "callback": <url>} on stdout: the page to sign in on, and
//    where the PDS will send the browser back to (an HTTP server of this script, on 127.0.0.1).
// 2. When the browser arrives there, exchanges the code, creates a post, reads the session,
//    forces a refresh, calls again, and signs out (which revokes the tokens at the PDS).
// 3. Answers the browser and prints ONE JSON line: {"ok": true, "steps": {...}} or
//    {"ok": false, "failed_step": ..., "error": ...}. Exits when done (status 1 on failure).
import http from 'node:http'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const peersDir =
  process.env.STRATA_PEERS_DIR ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'peers')
const [handle, pdsUrl, plcUrl] = process.argv.slice(2)
if (!handle || !pdsUrl || !plcUrl) {
  process.stderr.write('usage: oauth_client.mjs <handle> <pds-url> <plc-url>\n')
  process.exit(2)
}
const require = createRequire(path.join(peersDir, 'package.json'))
const load = async (name) => import(pathToFileURL(require.resolve(name)).href)
const { NodeOAuthClient, buildAtprotoLoopbackClientMetadata } = await load('@atproto/oauth-client-node')
const { Agent } = await load('@atproto/api')

const memory = () => {
  const values = new Map()
  return {
    async get(key) { return values.get(key) },
    async set(key, value) { values.set(key, value) },
    async del(key) { values.delete(key) },
  }
}

const server = http.createServer()
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const callback = `http://127.0.0.1:${server.address().port}/callback`
const scope = 'atproto transition:generic'
const client = new NodeOAuthClient({
  clientMetadata: buildAtprotoLoopbackClientMetadata({ scope, redirect_uris: [callback] }),
  stateStore: memory(),
  sessionStore: memory(),
  handleResolver: pdsUrl,
  plcDirectoryUrl: plcUrl,
  allowHttp: true,
})

const steps = {}
let current = 'authorize'
const finish = (report, status) => {
  process.stdout.write(JSON.stringify(report) + '\n')
  server.close()
  setTimeout(() => process.exit(status), 50)
}
const timer = setTimeout(() => finish({ ok: false, failed_step: 'timeout', steps }, 1), 60_000)

try {
  const url = await client.authorize(handle, { scope })
  steps.authorize = { host: url.host }
  process.stdout.write(JSON.stringify({ authorize: url.href, callback }) + '\n')
} catch (err) {
  finish({ ok: false, failed_step: current, error: String(err?.stack ?? err), steps }, 1)
}

server.on('request', async (req, res) => {
  const params = new URL(req.url, callback).searchParams
  let report
  try {
    current = 'callback'
    const { session, state } = await client.callback(params)
    steps.callback = { did: session.did, state: state ?? null }
    const agent = new Agent(session)
    current = 'createRecord'
    const created = await agent.com.atproto.repo.createRecord({
      repo: session.did,
      collection: 'app.bsky.feed.post',
      record: { $type: 'app.bsky.feed.post', text: 'Signed in with OAuth', createdAt: new Date().toISOString() },
    })
    steps.createRecord = { uri: created.data.uri }
    current = 'getSession'
    const about = await agent.com.atproto.server.getSession()
    steps.getSession = { did: about.data.did, handle: about.data.handle, hasEmail: 'email' in about.data }
    current = 'refresh'
    const before = await session.getTokenInfo(false)
    const after = await session.getTokenInfo(true)
    steps.refresh = { scope: after.scope, rotated: before.expiresAt?.getTime() !== undefined }
    current = 'afterRefresh'
    const listed = await agent.com.atproto.repo.listRecords({ repo: session.did, collection: 'app.bsky.feed.post' })
    steps.afterRefresh = { records: listed.data.records.length }
    current = 'signOut'
    await session.signOut()
    let refused = null
    try {
      await agent.com.atproto.server.getSession()
    } catch (err) {
      refused = { name: err?.name ?? null, message: String(err?.message ?? err) }
    }
    steps.signOut = { refused }
    report = { ok: refused !== null, steps, failed_step: refused === null ? 'signOut' : undefined }
  } catch (err) {
    report = { ok: false, failed_step: current, error: String(err?.stack ?? err), steps }
  }
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify(report))
  clearTimeout(timer)
  finish(report, report.ok ? 0 : 1)
})
