"""Labels (`com.atproto.label.defs#label`): signed by the labeler's `#atproto_label` key over the
DAG-CBOR of the label without its `sig`.

A label is kept in the data model (its `sig` as bytes); `to_json` / `from_json` of
`strata.core.cbor` give its JSON form (`sig` as `{"$bytes": ...}`), as `queryLabels` answers.
"""

from __future__ import annotations

from typing import Any, Final

from strata.core import cbor
from strata.core.crypto import Keypair, PublicKey
from strata.core.errors import CoreError, InvalidSyntax
from strata.core.syntax import validate_datetime, validate_did

LABEL_VERSION: Final = 1
MAX_VALUE_LENGTH: Final = 128


class LabelError(CoreError):
    """A label that is malformed."""


def new_label(
    src: str,
    uri: str,
    val: str,
    cts: str,
    cid: str | None = None,
    neg: bool = False,
    exp: str | None = None,
) -> dict[str, Any]:
    """An unsigned label, in the form labelers sign (absent fields left out, `neg` always
    given)."""
    label: dict[str, Any] = {"ver": LABEL_VERSION, "src": src, "uri": uri}
    if cid is not None:
        label["cid"] = cid
    label.update({"val": val, "neg": neg, "cts": cts})
    if exp is not None:
        label["exp"] = exp
    check_label(label)
    return label


def check_label(label: Any) -> dict[str, Any]:
    """`label` if it has a label's fields with their types (a signature is checked apart);
    raises `LabelError`."""
    if not isinstance(label, dict):
        raise LabelError("a label is an object")
    for name in ("src", "uri", "val", "cts"):
        if not isinstance(label.get(name), str) or not label[name]:
            raise LabelError(f"a label needs {name}")
    if len(label["val"]) > MAX_VALUE_LENGTH:
        raise LabelError(f"a label value is at most {MAX_VALUE_LENGTH} characters")
    try:
        validate_did(label["src"])
        validate_datetime(label["cts"])
        if label.get("exp") is not None:
            validate_datetime(label["exp"])
    except InvalidSyntax as exc:
        raise LabelError(str(exc)) from exc
    if "neg" in label and not isinstance(label["neg"], bool):
        raise LabelError("neg is a boolean")
    if "cid" in label and not isinstance(label["cid"], str):
        raise LabelError("cid is a string")
    if "sig" in label and not isinstance(label["sig"], bytes):
        raise LabelError("sig is bytes")
    return label


def signed_bytes(label: dict[str, Any]) -> bytes:
    """What the signature covers: the label's DAG-CBOR without `sig`."""
    return cbor.encode({k: v for k, v in label.items() if k != "sig"})


def sign_label(label: dict[str, Any], key: Keypair) -> dict[str, Any]:
    """The label with its signature."""
    return {**label, "sig": key.sign(signed_bytes(label))}


def verify_label(label: dict[str, Any], key: PublicKey) -> bool:
    """Whether `label` carries a signature by `key` over its other fields."""
    sig = label.get("sig")
    if not isinstance(sig, bytes):
        return False
    try:
        return key.verify(signed_bytes(label), sig)
    except CoreError:
        return False
