"""Renders errors as RFC 9457 ``application/problem+json``."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kluis.errors import UnsupportedMediaTypeError
from kluis.problems import (
    DOMAIN_ROOTS,
    INTERNAL,
    PROBLEMS,
    Problem,
    problem_extensions,
    problem_for,
    retry_after,
)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://kluis.example/problems/"
log = logging.getLogger("kluis.api")


def problem_json(
    problem: Problem,
    detail: str,
    instance: str,
    extensions: dict[str, object] | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    """The problem document for ``problem``; also used by the edge middleware."""
    body: dict[str, object] = {
        "type": TYPE_BASE + problem.slug,
        "title": problem.title,
        "status": problem.status,
        "detail": detail,
        "instance": instance,
    }
    body.update(extensions or {})
    headers: dict[str, str] = {}
    seconds = retry_after if retry_after is not None else problem.retry_after
    if seconds is not None:
        headers["Retry-After"] = str(seconds)
    if problem.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="kluis"'
    return JSONResponse(body, status_code=problem.status, headers=headers, media_type=PROBLEM_JSON)


def problem_response(
    request: Request,
    problem: Problem,
    detail: str,
    extensions: dict[str, object] | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    return problem_json(problem, detail, request.url.path, extensions, retry_after)


def _takes_form(request: Request) -> bool:
    """True when the matched route reads a multipart form (uploads); JSON routes are not
    415 for a bad JSON body but 422."""
    dependant = getattr(request.scope.get("route"), "dependant", None)
    body = getattr(dependant, "body_params", None) or []
    return any(isinstance(getattr(p, "field_info", None), params.Form) for p in body)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        ctype = request.headers.get("content-type", "")
        if _takes_form(request) and not ctype.startswith("multipart/form-data"):
            return problem_response(
                request,
                PROBLEMS[UnsupportedMediaTypeError],
                "send multipart/form-data with a file and a metadata part",
            )
        errors = [
            {
                "field": ".".join(str(p) for p in e["loc"][1:]) or str(e["loc"][0]),
                "message": e["msg"],
            }
            for e in exc.errors()
        ]
        problem = Problem(422, "invalid-request", "The request is not valid", 2)
        return problem_response(request, problem, "see errors", {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        cause = exc.__cause__
        if isinstance(cause, Exception) and problem_for(cause) is not None:
            # FastAPI wraps errors raised while parsing the body (e.g. the size limit).
            return await _domain(request, cause)
        slug = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(
            exc.status_code, "http-error"
        )
        problem = Problem(exc.status_code, slug, str(exc.detail), 1)
        return problem_response(request, problem, str(exc.detail))

    async def _domain(request: Request, exc: Exception) -> JSONResponse:
        problem = problem_for(exc)
        if problem is None or (problem.status >= 500 and problem.retry_after is None):
            return _internal(request, exc, problem or INTERNAL)
        return problem_response(
            request, problem, str(exc), problem_extensions(exc), retry_after(exc, problem)
        )

    # Registered per root class (not for Exception) so that Starlette's exception
    # middleware answers them and they do not surface as server errors.
    for root in DOMAIN_ROOTS:
        app.add_exception_handler(root, _domain)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc, INTERNAL)


def _internal(request: Request, exc: Exception, problem: Problem) -> JSONResponse:
    correlation = str(uuid.uuid4())
    log.error("internal error %s on %s", correlation, request.url.path, exc_info=exc)
    return problem_response(
        request,
        problem,
        "an internal error occurred; quote this id to the operators",
        {"correlation_id": correlation},
    )
