"""The aiohttp application every service starts from: error envelope, health, metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, generate_latest

from strata import __version__
from strata.net.admission import AdmissionControl, LaneOf, default_lane
from strata.net.errors import XrpcError
from strata.net.logs import log_event

log = logging.getLogger("strata.net")

HTTP_ERRORS = Counter(
    "strata_http_errors_total", "Requests answered with an error status", ["service", "status"]
)

HealthCheck = Callable[[], Awaitable[None]]
"""Raises when the service cannot serve (its database is gone, for example)."""

SERVICE_KEY = web.AppKey("strata_service", str)
ADMISSION_KEY = web.AppKey("strata_admission", AdmissionControl)
DEFAULT_MAX_IN_FLIGHT = 512


def json_response(
    body: Any,
    status: int = 200,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A compact JSON response."""
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type=content_type,
        headers=headers,
    )


def error_response(error: XrpcError) -> web.Response:
    """The XRPC error envelope for `error`."""
    response = json_response(error.body(), status=error.status)
    response.headers.update(error.headers)
    return response


@web.middleware
async def _error_envelope(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    service = request.app[SERVICE_KEY]
    try:
        response = await handler(request)
    except XrpcError as exc:
        HTTP_ERRORS.labels(service, str(exc.status)).inc()
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        HTTP_ERRORS.labels(service, str(exc.status)).inc()
        name = "NotFound" if exc.status == 404 else exc.reason.replace(" ", "")
        return json_response({"error": name, "message": exc.reason}, status=exc.status)
    except Exception:
        HTTP_ERRORS.labels(service, "500").inc()
        log_event(
            log, "unhandled error", logging.ERROR, exc_info=True, service=service, path=request.path
        )
        return json_response(
            {"error": "InternalServerError", "message": "Internal Server Error"}, status=500
        )
    return response


def run_alongside(
    app: web.Application, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    """Start a service when `app` starts serving and stop it when the server shuts down."""

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await start()
        yield
        await stop()

    app.cleanup_ctx.append(lifecycle)


def create_app(
    service: str,
    health: HealthCheck | None = None,
    max_body: int = 1 << 20,
    health_paths: tuple[str, ...] = ("/xrpc/_health",),
    lane_of: LaneOf = default_lane,
) -> web.Application:
    """A new application for `service` with health (`/xrpc/_health`) and `/metrics` routed,
    behind admission control (`ADMISSION_KEY`, whose capacity the command line sets)."""
    admission = AdmissionControl(service, DEFAULT_MAX_IN_FLIGHT, lane_of)
    app = web.Application(
        middlewares=[admission.middleware, _error_envelope], client_max_size=max_body
    )
    app[SERVICE_KEY] = service
    app[ADMISSION_KEY] = admission
    app.cleanup_ctx.append(admission.lifecycle)

    async def health_handler(request: web.Request) -> web.Response:
        if health is not None:
            try:
                await health()
            except Exception as exc:
                log_event(
                    log, "health check failed", logging.WARNING, service=service, error=str(exc)
                )
                return json_response(
                    {"version": __version__, "error": "Service Unavailable"}, status=503
                )
        return json_response({"version": __version__})

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    for path in health_paths:
        app.router.add_get(path, health_handler)
    app.router.add_get("/metrics", metrics_handler)
    return app
