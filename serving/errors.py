"""The API's errors as a client sees them: one body for every error (`ErrorBody`: `detail`, `errors`, `request_id`),
a refused body's field-level items (never the input echoed), the 422 of a body that is not JSON, and the exception
handlers that render every error in that body."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("serving")


class ErrorItem(BaseModel):
    field: str = Field(description="Where: `instances[0].temp`, or `body` for the whole body.")
    message: str
    type: str = Field(description="The kind of problem (pydantic's error type: `missing`, `float_type`, ...).")


class ErrorBody(BaseModel):
    """Every error the API answers (4xx and 5xx) has this body."""

    detail: str = Field(description="What went wrong and how to fix it, in one line.")
    errors: list[ErrorItem] = Field(description="One item per invalid field (422); empty for other errors.")
    request_id: str | None = Field(description="The request's id (also the `X-Request-ID` header), for the logs.")


def error_body(detail: Any, request_id: str | None, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The one error body (ErrorBody) as a dict, for the handlers and the ASGI layers that answer by themselves."""
    return {"detail": str(detail), "errors": errors or [], "request_id": request_id}


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "instances", 0, "temp")` -> `instances[0].temp`."""
    path = ""
    for part in loc:
        if part == "body" and not path:
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


# The whole body's problems, with the fix: pydantic's own words ("Input should be a valid dictionary") do not tell
# a client that forgot the content type what to do.
BODY_MESSAGES = {
    "missing": "a JSON object is required: send the request as JSON (Content-Type: application/json)",
    "dict_type": "must be a JSON object, sent with Content-Type: application/json",
}


def error_items(errors: list[dict[str, Any]], prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """pydantic error dicts -> what a client sees: the field, the problem and its type (never the input echoed)."""
    items = []
    for error in errors:
        loc = (*prefix, *error.get("loc", ()))
        if loc == ("body",) and error.get("type") in BODY_MESSAGES:
            items.append({"field": "body", "message": BODY_MESSAGES[error["type"]], "type": error["type"]})
            continue
        if error.get("type") == "json_invalid":  # its loc is ("body", <character offset>), not a field
            at = next((part for part in loc if isinstance(part, int)), None)
            where = f" at character {at}" if at is not None else ""
            items.append({"field": "body", "message": f"not valid JSON{where}", "type": "json_invalid"})
            continue
        items.append({"field": field_path(loc), "message": error.get("msg", "invalid"), "type": error.get("type", "")})
    return items


def malformed_body(cause: BaseException) -> InvalidInput | None:
    """The 422 of a body that is not JSON, whatever broke it (None: `cause` is not a decoding error).

    One status and one shape for every malformed body: before, broken syntax was a 422 and bytes that are not
    UTF-8 (or JSON nested deeper than the parser goes) were FastAPI's 400 "There was an error parsing the body"."""
    if isinstance(cause, json.JSONDecodeError):
        message = f"not valid JSON at character {cause.pos}"
    elif isinstance(cause, UnicodeDecodeError):
        message = f"not valid JSON: not UTF-8 text (byte {cause.start})"
    elif isinstance(cause, RecursionError):
        message = "not valid JSON: nested too deeply"
    elif isinstance(cause, ValueError):  # e.g. an integer of more than 4,300 digits
        message = "not valid JSON: a value the parser refuses (a number too long?)"
    else:
        return None
    return InvalidInput([{"field": "body", "message": message, "type": "json_invalid"}])


def validation_detail(items: list[dict[str, Any]]) -> str:
    shown = "; ".join(f"{i['field']}: {i['message']}" for i in items[:5])
    more = f" (and {len(items) - 5} more)" if len(items) > 5 else ""
    return f"{len(items)} invalid field(s): {shown}{more}"


class InvalidInput(Exception):
    """A request body that does not fit the model: answered with 422 and the field-level errors."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        super().__init__(validation_detail(items))
        self.items = items

    @classmethod
    def from_validation(cls, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> InvalidInput:
        return cls(error_items(exc.errors(include_input=False, include_url=False), prefix))


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def invalid_input_response(request: Request, exc: InvalidInput) -> JSONResponse:
    return JSONResponse(error_body(exc, request_id_of(request), exc.items), status_code=422)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    malformed = malformed_body(exc.__cause__) if exc.status_code == 400 and exc.__cause__ else None
    if malformed is not None:  # FastAPI's 400 for a body it could not decode: the one malformed-body 422
        return invalid_input_response(request, malformed)
    body = error_body(exc.detail, request_id_of(request))
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
    return invalid_input_response(request, exc)


async def request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    items = error_items([{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in exc.errors()])
    return JSONResponse(error_body(validation_detail(items), request_id_of(request), items), status_code=422)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("request %s failed: %s", request_id_of(request), type(exc).__name__, exc_info=exc)
    return JSONResponse(error_body("internal server error", request_id_of(request)), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(InvalidInput, invalid_input)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, request_validation)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)
