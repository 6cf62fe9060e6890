"""Making an account a labeler: its DID document names the labeler's key (`#atproto_label`)
and address (`#atproto_labeler`), through a directory change the account's PDS signs after the
code it mails, and its repository declares the label values (`app.bsky.labeler.service`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from strata.core.crypto import Keypair
from strata.net.client import XrpcClient
from strata.pds.sequencer import iso_now

SERVICE_RECORD: Final = "app.bsky.labeler.service"
DEFAULT_VALUES: Final = ("spam", "rude", "misleading", "!warn", "!hide")


async def request_code(pds: XrpcClient) -> None:
    """Have the PDS mail the signed-in account the code that confirms a directory change."""
    await pds.procedure("com.atproto.identity.requestPlcOperationSignature")


async def make_labeler(
    pds: XrpcClient, key: Keypair, endpoint: str, values: Sequence[str], code: str
) -> None:
    """Make the signed-in account of `pds` a labeler signing with `key` at `endpoint`; `code`
    is the one the PDS mailed (`request_code`)."""
    wanted = await pds.query("com.atproto.identity.getRecommendedDidCredentials")
    changes = {
        "token": code,
        "verificationMethods": {**wanted["verificationMethods"], "atproto_label": key.did()},
        "services": {
            **wanted["services"],
            "atproto_labeler": {"type": "AtprotoLabeler", "endpoint": endpoint.rstrip("/")},
        },
    }
    signed = await pds.procedure("com.atproto.identity.signPlcOperation", changes)
    await pds.procedure(
        "com.atproto.identity.submitPlcOperation", {"operation": signed["operation"]}
    )
    record = {
        "$type": SERVICE_RECORD,
        "policies": {"labelValues": list(values)},
        "createdAt": iso_now(),
    }
    await pds.put_record(SERVICE_RECORD, "self", record)
