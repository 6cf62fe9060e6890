"""The node's built-in feeds: an account of the node's own publishes the records of the feed
generator's `following`, `hot` and `lang-en` feeds, so that apps can list and open them."""

from __future__ import annotations

import aiohttp

from strata.feedgen.record import generator_record
from strata.feedgen.service import GENERATOR
from strata.net.client import XrpcClient, XrpcFailed
from strata.node.config import BUILTIN_FEEDS, FEEDS_ACCOUNT, NodeConfig


async def publish_builtin_feeds(
    http: aiohttp.ClientSession, config: NodeConfig, password: str
) -> str:
    """Create the publishing account if it does not exist yet, write the feed records, and
    return the account's DID."""
    pds = XrpcClient(http, config.url("pds"))
    handle = f"{FEEDS_ACCOUNT}{config.handle_domain}"
    try:
        await pds.login(handle, password)
    except XrpcFailed as exc:
        if exc.status != 401:
            raise
        await pds.create_account(handle, password)
    assert pds.session is not None
    for rkey in BUILTIN_FEEDS:
        # The app's own Following tab is the timeline; this one is the feed generator's.
        name = "Follows (feed)" if rkey == "following" else None
        record = generator_record(rkey, config.feedgen_did(), display_name=name)
        await pds.put_record(GENERATOR, rkey, record)
    return pds.session.did
