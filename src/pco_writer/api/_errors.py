"""Domain exceptions to HTTP answers, in one place, for the writer API and the control server.

Every error answer is JSON ``{"success": false, "error": MSG, "detail": MSG}``: pco_rclient
reads ``success``, our client reads ``detail``. No answer ever carries a traceback.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from pco_writer.errors import (
    AuthError,
    ClientError,
    ConfigError,
    DatasetExistsError,
    NotFoundError,
    OutputError,
    PcoWriterError,
    StateError,
    describe_validation,
)

__all__ = ["BadRequestError", "install_error_handlers", "http_status", "error_body", "read_json"]

log = logging.getLogger(__name__)


class BadRequestError(ConfigError):
    """The request itself is malformed (not JSON, not an object)."""


_STATUS: list[tuple[type[Exception], int]] = [
    (BadRequestError, 400),
    (AuthError, 401),
    (DatasetExistsError, 409),
    (ConfigError, 422),
    (StateError, 409),
    (NotFoundError, 404),
    (ClientError, 502),
    (OutputError, 500),
    (PcoWriterError, 400),
]


def http_status(exc: Exception) -> int:
    """The HTTP status code of a domain exception."""
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)


def error_body(message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"success": False, "error": message, "detail": message, **extra}


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, whatever its Content-Type (pco_rclient sends none)."""
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequestError(f"the request body is not JSON ({exc}); send a JSON object") from None
    except RecursionError:
        message = "the request body is JSON nested too deeply; send a flat object"
        raise BadRequestError(message) from None
    if not isinstance(body, dict):
        raise BadRequestError(f"the request body must be a JSON object, not {type(body).__name__}")
    return body


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure of ``app`` with JSON and a fitting status code."""

    async def domain(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(str(exc)), status_code=http_status(exc))

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ValidationError | RequestValidationError)
        return JSONResponse(error_body(describe_validation(exc)), status_code=422)

    async def http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected failure answering %s %s", request.method, request.url.path)
        message = f"internal error: {type(exc).__name__}: {exc}"
        return JSONResponse(error_body(message), status_code=500)

    app.add_exception_handler(PcoWriterError, domain)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(ValidationError, invalid)
    app.add_exception_handler(HTTPException, http)
    app.add_exception_handler(Exception, unexpected)
