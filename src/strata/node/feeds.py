"""The node's own accounts: one publishes the records of the feed generator's `following`,
`hot` and `lang-en` feeds, so that apps can list and open them; another is the labeler's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from strata.feedgen.record import generator_record
from strata.feedgen.service import GENERATOR
from strata.labeler.service import LabelerSecrets
from strata.labeler.setup import DEFAULT_VALUES, make_labeler, request_code
from strata.net.client import XrpcClient, XrpcFailed
from strata.node.config import BUILTIN_FEEDS, FEEDS_ACCOUNT, LABELER_ACCOUNT, NodeConfig
from strata.pds.mail import outbox_code

NodeAccount = Callable[[aiohttp.ClientSession], Awaitable[str]]
"""Work that sets up one of the node's accounts over a session; gives the account's DID."""


async def signed_in(
    http: aiohttp.ClientSession, config: NodeConfig, name: str, password: str
) -> XrpcClient:
    """The node's PDS, signed in as its account `name`, created if it does not exist yet."""
    pds = XrpcClient(http, config.url("pds"))
    handle = f"{name}{config.handle_domain}"
    try:
        await pds.login(handle, password)
    except XrpcFailed as exc:
        if exc.status != 401:
            raise
        await pds.create_account(handle, password)
    return pds


def publish_builtin_feeds(config: NodeConfig, password: str) -> NodeAccount:
    """Create the publishing account if it does not exist yet and write the feed records;
    the account's DID."""

    async def work(http: aiohttp.ClientSession) -> str:
        return await _publish(http, config, password)

    return work


async def _publish(http: aiohttp.ClientSession, config: NodeConfig, password: str) -> str:
    pds = await signed_in(http, config, FEEDS_ACCOUNT, password)
    assert pds.session is not None
    for rkey in BUILTIN_FEEDS:
        # The app's own Following tab is the timeline; this one is the feed generator's.
        name = "Follows (feed)" if rkey == "following" else None
        record = generator_record(rkey, config.feedgen_did(), display_name=name)
        await pds.put_record(GENERATOR, rkey, record)
    return pds.session.did


def set_up_labeler(config: NodeConfig, password: str, data_dir: Path) -> NodeAccount:
    """Create the labeler's account and make it a labeler (the code the PDS mails is read from
    its outbox in the node's data directory); its DID."""

    async def work(http: aiohttp.ClientSession) -> str:
        return await _make_labeler(http, config, password, data_dir)

    return work


async def _make_labeler(
    http: aiohttp.ClientSession, config: NodeConfig, password: str, data_dir: Path
) -> str:
    pds = await signed_in(http, config, LABELER_ACCOUNT, password)
    assert pds.session is not None
    await request_code(pds)
    code = outbox_code(data_dir / "pds", pds.session.did)
    key = LabelerSecrets.load_or_create(data_dir / "labeler").signing_key
    await make_labeler(pds, key, config.url("labeler"), DEFAULT_VALUES, code)
    return pds.session.did
