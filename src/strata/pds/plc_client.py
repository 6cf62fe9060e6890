"""The PDS's writes to the PLC directory: new DIDs, and operations its accounts sign.

Operations go to the first directory that answers; a refusal (4xx) is an answer, only network
failures and 5xx move on to the next directory.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from strata.core.crypto import Keypair
from strata.core.plc import did_for_genesis, sign_operation
from strata.net.upstream import UpstreamPool, UpstreamUnavailable


class PlcRejected(Exception):
    """The directory refused the operation (4xx); `message` is its reason."""


class PlcUnavailable(Exception):
    """No directory could be reached."""


def atproto_services(endpoint: str) -> dict[str, Any]:
    return {"atproto_pds": {"type": "AtprotoPersonalDataServer", "endpoint": endpoint}}


class PlcClient:
    def __init__(self, session: aiohttp.ClientSession, urls: tuple[str, ...]) -> None:
        self.session = session
        self.pool = UpstreamPool("plc-write", urls, timeout=10.0, hedge_after=5.0)

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async def attempt(base: str) -> tuple[int, Any]:
            async with self.session.request(method, f"{base}{path}", json=body) as response:
                text = await response.text()
                if response.status >= 500:
                    raise PlcUnavailable(f"{base}: status {response.status}")
                try:
                    return response.status, json.loads(text) if text else None
                except json.JSONDecodeError:
                    return response.status, text

        try:
            return await self.pool.call(attempt)
        except UpstreamUnavailable as exc:
            raise PlcUnavailable(str(exc)) from exc

    async def submit(self, did: str, operation: dict[str, Any]) -> None:
        """Send a signed operation for `did`; raises `PlcRejected` or `PlcUnavailable`."""
        status, body = await self._request("POST", f"/{did}", operation)
        if status != 200:
            message = body.get("message") if isinstance(body, dict) else body
            raise PlcRejected(str(message or f"status {status}"))

    async def last_operation(self, did: str) -> dict[str, Any] | None:
        status, body = await self._request("GET", f"/{did}/log/last")
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict):
            raise PlcUnavailable(f"directory answered {status} for {did}'s last operation")
        return body

    async def create_did(
        self, rotation_key: Keypair, signing_key: Keypair, handle: str, endpoint: str
    ) -> str:
        """Register a new DID whose document names `endpoint`, `handle` and `signing_key`,
        recoverable with the PDS's `rotation_key`; returns the DID."""
        genesis = sign_operation(
            {
                "type": "plc_operation",
                "rotationKeys": [rotation_key.did()],
                "verificationMethods": {"atproto": signing_key.did()},
                "alsoKnownAs": [f"at://{handle}"],
                "services": atproto_services(endpoint),
                "prev": None,
            },
            rotation_key,
        )
        did = did_for_genesis(genesis)
        await self.submit(did, genesis)
        return did
