"""Domain errors to HTTP statuses, in one place; every error body says what to do.

A bad request field is a 422 in FastAPI's own shape (``detail[].loc`` names the
field), whether pydantic caught it or a rule that needs settings or the catalogue.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, InterfaceError, OperationalError

from cropai.db import first_line, is_unreachable
from cropai.errors import (
    CropAIError,
    InvalidInput,
    InvalidRequestField,
    ModelNotFound,
    ObjectNotFound,
    ServiceUnavailable,
)

logger = logging.getLogger("cropai.api")

# What a 503 asks the client to wait before trying again: a database restart or fail-over
# takes seconds.
RETRY_AFTER_S = 5

STATUS_OF: list[tuple[type[Exception], int]] = [
    (ObjectNotFound, 404),
    (ModelNotFound, 422),
    (InvalidInput, 422),
    (ServiceUnavailable, 503),
    (CropAIError, 400),
]


def field_error(location: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 naming the field at ``location``, e.g. ``("body", "aoi")``."""
    return RequestValidationError([{"loc": location, "msg": message, "type": "value_error"}])


class TooManyRequests(Exception):
    def __init__(self, what: str, retry_after_s: int) -> None:
        super().__init__(what)
        self.retry_after_s = retry_after_s


def install_error_handlers(app: FastAPI) -> None:
    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
        if status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc)
        headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    async def invalid_field(request: Request, exc: Exception) -> JSONResponse:
        # A request body field that a core rule refused: answered as pydantic's refusals are.
        assert isinstance(exc, InvalidRequestField)
        return await request_validation_exception_handler(request, field_error(("body", exc.field), str(exc)))

    async def too_many(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TooManyRequests)
        return JSONResponse(
            {"detail": f"too many {exc}; try again in {exc.retry_after_s} s"},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    async def unstorable(request: Request, exc: Exception) -> JSONResponse:
        # The database refused a value pydantic let through: a NUL character in text, a number
        # out of range. The transaction is rolled back with the request's session.
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return JSONResponse({"detail": f"a value cannot be stored: {reason}"}, status_code=422)

    async def unreachable(request: Request, exc: Exception) -> JSONResponse:
        # A dropped or refused connection; any other InterfaceError is a bug, answered as one.
        if not is_unreachable(exc):
            return await unexpected(request, exc)
        logger.warning("%s %s: database unreachable: %s", request.method, request.url.path, first_line(exc))
        return JSONResponse(
            {"detail": f"the catalogue database cannot be reached; retry in {RETRY_AFTER_S} s"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = request.scope.get("state", {}).get("request_id", "")
        logger.exception("unhandled error in %s %s (request %s)", request.method, request.url.path, request_id)
        return JSONResponse(
            {"detail": f"internal error; quote request id {request_id} to the operator"}, status_code=500
        )

    app.add_exception_handler(CropAIError, domain_error)
    app.add_exception_handler(InvalidRequestField, invalid_field)
    app.add_exception_handler(TooManyRequests, too_many)
    app.add_exception_handler(DataError, unstorable)
    app.add_exception_handler(OperationalError, unreachable)
    app.add_exception_handler(InterfaceError, unreachable)
    app.add_exception_handler(Exception, unexpected)
