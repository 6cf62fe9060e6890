"""OAuth error answers (RFC 6749 section 5.2, RFC 9449): `{"error", "error_description"}`."""

from __future__ import annotations


class OAuthError(Exception):
    """An error the authorization server answers with; `headers` may carry a DPoP nonce or a
    `WWW-Authenticate` challenge."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_client(description: str) -> OAuthError:
    return OAuthError("invalid_client", description)


def invalid_client_metadata(description: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", description)


def invalid_dpop_proof(description: str) -> OAuthError:
    return OAuthError("invalid_dpop_proof", description)


def use_dpop_nonce(
    description: str = "Authorization server requires nonce in DPoP proof",
) -> OAuthError:
    return OAuthError("use_dpop_nonce", description)
