"""Open-loop read load at a fixed rate, from its own process so that the measuring process
stays responsive: `python -m tests.chaos.flood --url URL --token JWT --rate N --seconds S`.

Prints one JSON object: answers by status, how many carried Retry-After, and client errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import aiohttp


async def main(url: str, token: str, rate: float, seconds: float) -> dict[str, object]:
    statuses: Counter[str] = Counter()
    retry_after = 0
    pending: set[asyncio.Task[None]] = set()
    limit = asyncio.Semaphore(2000)  # the client's own bound, far above any server's

    async def one(http: aiohttp.ClientSession) -> None:
        nonlocal retry_after
        async with limit:
            try:
                async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as r:
                    await r.read()
                    statuses[str(r.status)] += 1
                    retry_after += "Retry-After" in r.headers
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1

    timeout = aiohttp.ClientTimeout(total=15)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) - sent
            for _ in range(due):
                task = asyncio.create_task(one(http))
                pending.add(task)
                task.add_done_callback(pending.discard)
            sent += max(0, due)
            await asyncio.sleep(0.005)
        if pending:
            await asyncio.wait(pending, timeout=20)
    return {"sent": sent, "statuses": dict(statuses), "retry_after": retry_after}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.url, args.token, args.rate, args.seconds))))
