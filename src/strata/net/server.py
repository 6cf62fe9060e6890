"""The aiohttp application every service starts from: error envelope, health, metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

from strata import __version__
from strata.net.admission import UPSTREAMS_PATH, AdmissionControl, LaneOf, default_lane
from strata.net.body import client_gone, note_client_gone
from strata.net.errors import XrpcError
from strata.net.logs import log_event
from strata.net.worker_metrics import service_registry

log = logging.getLogger("strata.net")

HTTP_ERRORS = Counter(
    "strata_http_errors_total", "Requests answered with an error status", ["service", "status"]
)

HealthCheck = Callable[[], Awaitable[None]]
"""Raises when the service cannot serve (its database is gone, for example)."""
Upstreams = Callable[[], list[dict[str, Any]]]
"""The service's upstreams as `/xrpc/_upstreams` lists them (`UpstreamPool.describe`)."""

EXPOSED_HEADERS: Final = ", ".join(
    (
        "atproto-repo-rev",
        "atproto-content-labelers",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "RateLimit-Policy",
        "Retry-After",
        "DPoP-Nonce",
        "WWW-Authenticate",
        "strata-stale-seconds",
        "strata-stale-reason",
        "strata-degraded",
    )
)
"""Response headers a browser app on another origin may read: the reference's, and Strata's
staleness marks, which a client shows as a notice."""

SERVICE_KEY = web.AppKey("strata_service", str)
ADMISSION_KEY = web.AppKey("strata_admission", AdmissionControl)
WORKER_KEY = web.AppKey("strata_worker", int)
"""The number of the worker process serving the app, when the service runs several."""
DEFAULT_MAX_IN_FLIGHT = 512
HEALTH_TIMEOUT: Final = 2.0
"""Seconds a health check may take before the service answers 503."""


def json_response(
    body: Any,
    status: int = 200,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A compact JSON response (UTF-8, keys in the order they were built)."""
    return web.Response(
        body=orjson.dumps(body),
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
async def _cors_preflight(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # Browser apps call every service from their own origin, as with the reference services.
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE",
                "Access-Control-Allow-Headers": request.headers.get(
                    "Access-Control-Request-Headers", ""
                ),
                "Access-Control-Max-Age": "86400",
            },
        )
    return await handler(request)


async def _cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Access-Control-Allow-Origin", "*")
    response.headers.setdefault("Access-Control-Expose-Headers", EXPOSED_HEADERS)


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
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and client_gone(request):
            return note_client_gone(request)
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
    upstreams: Upstreams | None = None,
) -> web.Application:
    """A new application for `service` with health (`/xrpc/_health`), `/metrics` and, given
    `upstreams`, `/xrpc/_upstreams` routed, open to browser apps on other origins (CORS), behind
    admission control (`ADMISSION_KEY`, whose capacity the command line sets)."""
    admission = AdmissionControl(service, DEFAULT_MAX_IN_FLIGHT, lane_of)
    app = web.Application(
        middlewares=[_cors_preflight, admission.middleware, _error_envelope],
        client_max_size=max_body,
    )
    app.on_response_prepare.append(_cors_headers)
    app[SERVICE_KEY] = service
    app[ADMISSION_KEY] = admission
    app.cleanup_ctx.append(admission.lifecycle)

    async def health_handler(request: web.Request) -> web.Response:
        if health is not None:
            try:
                # A health answer must come quickly, whatever the check waits on.
                async with asyncio.timeout(HEALTH_TIMEOUT):
                    await health()
            except Exception as exc:
                log_event(
                    log,
                    "health check failed",
                    logging.WARNING,
                    service=service,
                    error=str(exc) or type(exc).__name__,
                )
                return json_response(
                    {"version": __version__, "error": "Service Unavailable"}, status=503
                )
        answer: dict[str, Any] = {"version": __version__}
        if WORKER_KEY in request.app:
            answer["worker"] = request.app[WORKER_KEY]
        return json_response(answer)

    async def metrics_handler(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(service_registry()), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    for path in health_paths:
        app.router.add_get(path, health_handler)
    app.router.add_get("/metrics", metrics_handler)
    if upstreams is not None:

        async def upstreams_handler(request: web.Request) -> web.Response:
            return json_response({"service": service, "upstreams": upstreams()})

        app.router.add_get(UPSTREAMS_PATH, upstreams_handler)
    return app
