"""One error shape for programs: ``{"error": "<one line>"}`` with the right
status, for our own errors, FastAPI's parameter validation, unknown routes and
unexpected failures alike — never a traceback or an HTML page."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from worklens.collector.store import StoreUnavailable

log = logging.getLogger(__name__)
# What a 503 asks a client to wait when the database is down or restarting.
STORE_RETRY_AFTER_S = 5


class ApiError(Exception):
    """An expected failure with the status and the one-line message to send."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_param(name: str, problem: str) -> ApiError:
    """A 400 that names the query parameter, e.g. ``from: expected YYYY-MM-DD``."""
    return ApiError(400, f"{name}: {problem}")


def error_response(status: int, message: str, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    one_line = " ".join(str(message).split())
    return JSONResponse({"error": one_line}, status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "path", "body")]
        where = ".".join(loc) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_req: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(StoreUnavailable)
    async def _store_down(_req: Request, exc: StoreUnavailable) -> JSONResponse:
        # e.g. the shared PostgreSQL is restarting: the collector stays up, retry later
        return error_response(503, str(exc), {"Retry-After": str(STORE_RETRY_AFTER_S)})

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", req.method, req.url.path)
        return error_response(500, f"internal error: {type(exc).__name__}")
