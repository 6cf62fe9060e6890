"""Errors a handler raises to answer with the XRPC error envelope."""

from __future__ import annotations


class XrpcError(Exception):
    """An error answer: HTTP `status` with `{"error": error, "message": message}`."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        """The JSON body of the answer."""
        return {"error": self.error, "message": self.message}


def invalid_request(message: str) -> XrpcError:
    """400 InvalidRequest: the client sent something wrong."""
    return XrpcError(400, "InvalidRequest", message)


def not_found(message: str) -> XrpcError:
    """404 NotFound."""
    return XrpcError(404, "NotFound", message)


def upstream_failure(message: str) -> XrpcError:
    """502 UpstreamFailure: the service this one depends on did not answer usefully."""
    return XrpcError(502, "UpstreamFailure", message)
