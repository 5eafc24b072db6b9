"""Intake's HTTP API for integrating agencies. OpenAPI at /openapi.json, interactive docs at /docs."""

import asyncio
import gc
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any, Self

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from services.common import http
from services.common.contracts import Command, FileComplaint, Role
from services.common.db import create_pool
from services.common.reference import reference
from services.intake.adapters import repository as repo
from services.intake.adapters.repository import Agency, CaseAccess, Submission
from services.intake.adapters.vault import Contact, Erased, Vault
from services.intake.commands import COMMAND_ROUTES, CommandRoute
from services.intake.domain import ComplaintRequest, complainant_ref, fingerprint, may_access
from services.intake.entrypoints import open311
from services.intake.ratelimit import RateLimiter, TtlCache
from services.intake.service import IdempotencyConflict, Submit, Submitter

MAX_BODY_BYTES = 64 * 1024
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "the API key, as a header"},
}
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
CASE_ID_PATTERN = r"^RC-[0-9]{8}-[0-9]{6,}$"
IDEMPOTENCY_DOC = "Same key and body: same answer. Same key, other body: 409."
IDEMPOTENCY_PARAMETER: dict[str, Any] = {  # as FastAPI documents `Header()` of `str | None`
    "name": "idempotency-key",
    "in": "header",
    "required": False,
    "schema": {
        "anyOf": [{"type": "string"}, {"type": "null"}],
        "description": IDEMPOTENCY_DOC,
        "title": "Idempotency-Key",
    },
    "description": IDEMPOTENCY_DOC,
}


class SubmissionOut(BaseModel):
    submission_id: uuid.UUID
    case_id: str
    complainant_ref: str | None = None  # on a filing: the complainant's opaque ref, to relay their rating later
    command: str
    status: str  # received | applied | refused
    code: str | None = None
    reason: str | None = None
    case_version: int | None = None
    received_at: datetime
    decided_at: datetime | None = None
    links: dict[str, str]

    @classmethod
    def of(cls, s: Submission) -> Self:
        return cls(
            submission_id=s.submission_id,
            case_id=s.case_id,
            complainant_ref=s.complainant_ref,
            command=s.command_type,
            status=s.status,
            code=s.code,
            reason=s.reason,
            case_version=s.case_version,
            received_at=s.received_at,
            decided_at=s.decided_at,
            links={"self": f"/v1/submissions/{s.submission_id}"},
        )


class CaseOut(BaseModel):
    case_id: str
    status: str  # "received" until rectification has filed it, then the case status
    responsible_unit_id: str | None
    case_version: int
    updated_at: datetime
    links: dict[str, str]

    @classmethod
    def of(cls, a: CaseAccess) -> Self:
        return cls(
            case_id=a.case_id,
            status=a.status,
            responsible_unit_id=a.responsible_unit_id,
            case_version=a.case_version,
            updated_at=a.updated_at,
            links={"self": f"/v1/cases/{a.case_id}"},
        )


class ContactOut(BaseModel):
    complainant_ref: str
    name: str
    phone: str | None
    email: str | None


class NewKeyOut(BaseModel):
    api_key: str  # shown once; only its hash is kept
    previous_key_expires_at: datetime


class CaseList(BaseModel):
    page: int
    size: int
    cases: list[CaseOut]


class ProblemOut(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, str]] | None = None


# Every error is application/problem+json (RFC 9457), documented on every operation.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": desc,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for code, desc in {
        400: "Malformed JSON",
        401: "Missing, unknown, expired or revoked API key",
        403: "This agency's role may not do this",
        404: "No such resource for this agency (another agency's case answers 404 too)",
        409: "Idempotency-Key reused with a different body",
        410: "Erased: this personal data can never be read again",
        413: "Body too large",
        415: "Body is not JSON",
        422: "A field or parameter is missing or invalid; `errors` names each one and the reason",
        429: "Rate limit exceeded; see Retry-After",
    }.items()
}


class DirectRoute(APIRoute):
    """A documented route whose endpoint takes the Request and returns the Response itself (FastAPI's custom route
    class hook): no parameters solved, no answer validated and encoded per request, and no per-request exit stacks
    for dependencies with ``yield`` (it has none). What it raises is answered by the app's exception handlers
    (problem+json) as before, one layer out; the app's middleware still wraps it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        endpoint = self.get_route_handler()

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = await endpoint(Request(scope, receive, send))
            await response(scope, receive, send)

        self.app = app

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


def create_app(
    dsn: str,
    clock: Callable[[], datetime],
    vault: Vault,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    limiter: RateLimiter | None = None,
) -> FastAPI:
    limiter = limiter or RateLimiter()
    authenticated = TtlCache(ttl=2.0)  # keys checked in the last 2 s: one query per key, not per request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(dsn, "intake", min_size=2, max_size=16)
        app.state.submitter = Submitter(app.state.pool, vault, clock)
        app.state.submitter.start()
        yield
        await app.state.submitter.stop()
        await app.state.pool.close()

    app = FastAPI(
        title="Rectify intake API",
        version="1.0.0",
        summary="File complaints and follow their submissions. Every POST is idempotent under Idempotency-Key.",
        lifespan=lifespan,
    )
    http.install(app, "intake")

    def pool(request: Request) -> asyncpg.Pool:
        p: asyncpg.Pool = request.app.state.pool
        return p

    async def agency(request: Request) -> Agency:
        return await authenticate(request, _api_key(http.header_map(request)))

    async def authenticate(request: Request, key: str | None) -> Agency:
        """The agency holding this API key, within its rate limit; otherwise a 401 or 429 problem."""
        if not key:
            raise http.Problem(401, "Unauthenticated", "send your API key as 'Authorization: Bearer <key>'")
        found = authenticated.get(key, time.monotonic())
        if not isinstance(found, Agency):
            found = await check_key(request, key)
            if found is None:
                raise http.Problem(401, "Unauthenticated", "the API key is unknown, expired or revoked")
        wait = limiter.allow(found.agency_id, found.rate_per_minute, time.monotonic())
        if wait > 0:
            raise http.Problem(
                429,
                "Too many requests",
                f"this agency may make {found.rate_per_minute} requests a minute",
                retry_after=max(1, math.ceil(wait)),
            )
        return found

    checking: dict[str, asyncio.Task[Agency | None]] = {}

    async def check_key(request: Request, key: str) -> Agency | None:
        """One query per key when its cache entry is missing or expired, however many requests carry it meanwhile
        (they all wait for the same lookup), rather than one query for each of them."""
        lookup = checking.get(key)
        if lookup is None:
            lookup = checking[key] = asyncio.ensure_future(look_up_key(pool(request), key))
            lookup.add_done_callback(lambda t: t.cancelled() or t.exception())  # its waiters may all be gone
        return await asyncio.shield(lookup)

    async def look_up_key(db: asyncpg.Pool, key: str) -> Agency | None:
        try:
            found = await repo.authenticate(db, key, clock())
            if found is not None:
                authenticated.put(key, found, time.monotonic())
            return found
        finally:
            del checking[key]

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        try:
            await pool(request).fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError):
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    def idempotency(key: str | None) -> str | None:
        if key is not None and not IDEMPOTENCY_KEY.match(key):
            raise http.Problem(
                422,
                "Invalid request",
                "bad Idempotency-Key header",
                [{"field": "Idempotency-Key", "reason": "1 to 200 printable ASCII characters"}],
            )
        return key

    IdempotencyKey = Annotated[str | None, Header(description=IDEMPOTENCY_DOC)]

    async def submit(request: Request, item: Submit) -> Response:
        """Stored durably (with whatever else was waiting, in one commit), then 202."""
        try:
            submission = await request.app.state.submitter.submit(item)
        except IdempotencyConflict:
            raise http.Problem(409, "Conflict", "this Idempotency-Key was used with a different body") from None
        return _Accepted(submission)

    # The hot route takes the request alone and answers with a ready Response: FastAPI neither solves parameters
    # nor serialises a model per request (DirectRoute); the document still shows the same header, body, answer and
    # security as the other POSTs.
    async def file_complaint(request: Request) -> Response:
        headers = http.header_map(request)
        who = await authenticate(request, _api_key(headers))
        if who.role is not Role.CHANNEL or who.channel is None:
            raise http.Problem(403, "Forbidden", "only a filing channel may file complaints")
        given = headers.get(b"idempotency-key")
        key = idempotency(None if given is None else given.decode("latin-1"))
        body, raw = await http.read_body(request, ComplaintRequest, max_body_bytes, headers, _raw_reference_errors)
        _check_reference(body)
        person = body.complainant
        ref = complainant_ref()
        channel = who.channel

        def command(_: str) -> Command:
            return FileComplaint(
                channel=channel,
                category=body.category,
                unit_id=body.unit_id,
                cadre=body.cadre,
                description=body.description,
                location=body.location,
                happened_on=body.happened_on,
                severity=body.severity,
                complainant_ref=ref,
            )

        return await submit(
            request,
            Submit(
                who=who,
                idempotency_key=key,
                digest=fingerprint(raw),
                command=command,
                contact=Contact(person.name, person.phone, person.email),
                complainant_ref=ref,
            ),
        )

    app.router.add_api_route(
        "/v1/complaints",
        file_complaint,
        methods=["POST"],
        status_code=202,
        response_model=SubmissionOut,
        responses=ERRORS,
        openapi_extra=_body_doc(ComplaintRequest, IDEMPOTENCY_PARAMETER),
        summary="File a complaint (filing channels only)",
        tags=["filing"],
        route_class_override=DirectRoute,
    )

    async def visible_case(conn: asyncpg.Connection | asyncpg.Pool, who: Agency, case_id: str) -> CaseAccess:
        """The case if this agency may see it; otherwise 404, exactly as if it did not exist."""
        access = await repo.get_case_access(conn, case_id)
        if access is None or not may_access(
            who.role, who.agency_id, who.unit_id, access.filed_by, access.responsible_unit_id
        ):
            raise http.Problem(404, "Not found", f"no case {case_id} for this agency")
        return access

    CaseId = Annotated[str, Path(pattern=CASE_ID_PATTERN, description="the case id, e.g. RC-20261123-000001")]

    @app.get(
        "/v1/cases",
        response_model=CaseList,
        responses=ERRORS,
        summary="The cases this agency may see: those it filed, those its unit is responsible for, or all",
        tags=["cases"],
    )
    async def list_cases(
        request: Request,
        who: Annotated[Agency, Depends(agency)],
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        size: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> CaseList:
        rows = await repo.visible_cases(pool(request), who, size, (page - 1) * size)
        return CaseList(page=page, size=size, cases=[CaseOut.of(r) for r in rows])

    @app.get(
        "/v1/cases/{case_id}",
        response_model=CaseOut,
        responses=ERRORS,
        summary="Where a case stands, as far as this agency may see it",
        tags=["cases"],
    )
    async def get_case(case_id: CaseId, request: Request, who: Annotated[Agency, Depends(agency)]) -> CaseOut:
        return CaseOut.of(await visible_case(pool(request), who, case_id))

    def add_command_route(route: CommandRoute) -> None:
        async def endpoint(
            case_id: CaseId,
            request: Request,
            who: Annotated[Agency, Depends(agency)],
            idempotency_key: IdempotencyKey = None,
        ) -> Response:
            if who.role not in route.roles:
                allowed = " or ".join(sorted(r.value for r in route.roles))
                raise http.Problem(403, "Forbidden", f"only a {allowed} may {route.path.replace('-', ' ')}")
            key = idempotency(idempotency_key)
            await visible_case(pool(request), who, case_id)  # before the body: an unseen case is 404 whatever is sent
            body, raw = await http.read_body(request, route.command, max_body_bytes)
            return await submit(
                request,
                Submit(who=who, idempotency_key=key, digest=fingerprint(raw), command=lambda _: body, case_id=case_id),
            )

        app.post(
            f"/v1/cases/{{case_id}}/{route.path}",
            status_code=202,
            response_model=SubmissionOut,
            responses=ERRORS,
            openapi_extra=_body_doc(route.command),
            summary=route.summary,
            name=route.command.message_type,
            tags=["case lifecycle"],
        )(endpoint)

    for route in COMMAND_ROUTES:
        add_command_route(route)

    def supervisor_only(who: Agency, action: str) -> None:
        if who.role is not Role.SUPERVISOR:
            raise http.Problem(403, "Forbidden", f"only a supervisor may {action}")

    Ref = Annotated[str, Path(pattern=r"^cp-[0-9a-f]{20}$", description="a complainant's opaque ref")]

    @app.get(
        "/v1/complainants/{ref}",
        response_model=ContactOut,
        responses=ERRORS,
        summary="A complainant's contact, for the supervisory office (decrypted on request)",
        tags=["complainants"],
    )
    async def read_complainant(ref: Ref, request: Request, who: Annotated[Agency, Depends(agency)]) -> ContactOut:
        supervisor_only(who, "read a complainant's contact")
        try:
            contact = await vault.read(pool(request), ref)
        except Erased:
            raise http.Problem(410, "Gone", "this complainant's personal data was erased") from None
        if contact is None:
            raise http.Problem(404, "Not found", "no such complainant")
        return ContactOut(complainant_ref=ref, name=contact.name, phone=contact.phone, email=contact.email)

    @app.delete(
        "/v1/complainants/{ref}",
        status_code=204,
        responses=ERRORS,
        summary="Erase a complainant's personal data: its key is destroyed; the case's public record stays",
        tags=["complainants"],
    )
    async def erase_complainant(ref: Ref, request: Request, who: Annotated[Agency, Depends(agency)]) -> Response:
        supervisor_only(who, "erase a complainant's personal data")
        if not await Vault.erase(pool(request), ref):
            if await pool(request).fetchval("SELECT true FROM complainants WHERE complainant_ref = $1", ref):
                return Response(status_code=204)  # already erased: erasure is idempotent
            raise http.Problem(404, "Not found", "no such complainant")
        return Response(status_code=204)

    @app.post(
        "/v1/keys/rotate",
        status_code=201,
        response_model=NewKeyOut,
        responses=ERRORS,
        summary="Issue a new API key for this agency; the key used to ask keeps working for the grace period",
        tags=["keys"],
    )
    async def rotate_key(
        request: Request,
        who: Annotated[Agency, Depends(agency)],
        grace_hours: Annotated[int, Query(ge=0, le=168, description="how long the old key keeps working")] = 24,
    ) -> NewKeyOut:
        old_expires = clock() + timedelta(hours=grace_hours)
        async with pool(request).acquire() as conn:
            key = await repo.rotate_key(conn, who, old_expires)
        if grace_hours == 0:
            authenticated.clear()
        return NewKeyOut(api_key=key, previous_key_expires_at=old_expires)

    @app.delete(
        "/v1/keys/current",
        status_code=204,
        responses=ERRORS,
        summary="Revoke the API key used for this request, at once",
        tags=["keys"],
    )
    async def revoke_current_key(request: Request, who: Annotated[Agency, Depends(agency)]) -> Response:
        await repo.revoke_key(pool(request), who.key_id)
        authenticated.clear()
        return Response(status_code=204)

    @app.get(
        "/v1/submissions/{submission_id}",
        response_model=SubmissionOut,
        responses=ERRORS,
        summary="Where a submission stands: received, then applied (with the case version) or refused (with why)",
    )
    async def submission_status(
        submission_id: uuid.UUID, request: Request, who: Annotated[Agency, Depends(agency)]
    ) -> SubmissionOut:
        found = await repo.get_submission(pool(request), who.agency_id, submission_id)
        if found is None:
            raise http.Problem(404, "Not found", "no such submission for this agency")
        return SubmissionOut.of(found)

    app.include_router(open311.router(authenticate, max_body_bytes))
    # The router tries routes in order: the hot one goes first. The document does not move: the routes it passes
    # (the docs pages, health and readiness) are not in it, so the operations keep their order.
    routes = app.router.routes
    routes.insert(0, routes.pop(next(i for i, r in enumerate(routes) if isinstance(r, DirectRoute))))
    app.openapi = _with_body_schemas(app)  # type: ignore[method-assign]
    return app


BODY_SCHEMAS: dict[str, Any] = {"Problem": ProblemOut.model_json_schema()}


def _body_doc(model: type[BaseModel], *parameters: dict[str, Any]) -> dict[str, Any]:
    """The strict body's JSON Schema for the OpenAPI document (its nested definitions go to components), and
    the parameters a route reads itself rather than through FastAPI."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    BODY_SCHEMAS.update(schema.pop("$defs", {}))
    doc: dict[str, Any] = {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
    if parameters:
        doc["parameters"] = list(parameters)
    return doc


def _with_body_schemas(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            doc.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
            doc["security"] = [{"bearer": []}, {"apiKey": []}]  # every documented operation needs an API key
            schemas = doc["components"].setdefault("schemas", {})
            for name, schema in BODY_SCHEMAS.items():
                schemas.setdefault(name, schema)
            app.openapi_schema = doc
        return app.openapi_schema

    return openapi


def tune_gc() -> None:
    """For the serving process, once the app is built. Each request allocates many short-lived objects (a request,
    a validated body, a command, its envelope) that die young: freeze what start-up made, so the collector stops
    rescanning it, and collect the young generation less often. Measured in docs/benchmarks.md (intake)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def _api_key(headers: dict[bytes, bytes]) -> str | None:
    """The API key from 'Authorization: Bearer' or 'X-API-Key' (the document's security schemes)."""
    scheme, _, credentials = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    key = headers.get(b"x-api-key")
    return None if key is None else key.decode("latin-1")


def _reference_errors(category: object, unit_id: object) -> list[dict[str, str]]:
    """A complaint's category and unit checked against the reference data (on every filing: the reasons are written
    only when one is unknown)."""
    ref = reference()
    unknown = ref.unknown(category, unit_id)
    if not unknown:
        return []
    reasons = {
        "category": f"unknown category; one of {', '.join(sorted(ref.categories))}",
        "unit_id": "unknown unit; see the unit list in the API docs",
    }
    return [{"field": field, "reason": reasons[field]} for field in unknown]


def _raw_reference_errors(parsed: dict[str, Any]) -> list[dict[str, str]]:
    """The reference checks on a body that failed validation, so that its 422 names these fields too."""
    return _reference_errors(parsed.get("category"), parsed.get("unit_id"))


def _check_reference(body: ComplaintRequest) -> None:
    errors = _reference_errors(body.category, body.unit_id)
    if errors:
        raise http.Problem(422, "Invalid request", "some fields are missing or invalid", errors)


class _Accepted(Response):
    """The 202 for a stored submission, in the shape of SubmissionOut with its Location header: the body encoded in one
    orjson call (the same bytes as the model's own JSON, which the status endpoint answers: ``Z`` for UTC) and the
    headers written directly instead of through ``Response.__init__``'s header mapping: this is the hot path."""

    media_type = "application/json"

    def __init__(self, s: Submission) -> None:
        link = f"/v1/submissions/{s.submission_id}"
        self.status_code = 202
        self.background = None
        self.body = body = orjson.dumps(
            {
                "submission_id": link[16:],
                "case_id": s.case_id,
                "complainant_ref": s.complainant_ref,
                "command": s.command_type,
                "status": s.status,
                "code": s.code,
                "reason": s.reason,
                "case_version": s.case_version,
                "received_at": s.received_at,
                "decided_at": s.decided_at,
                "links": {"self": link},
            },
            option=orjson.OPT_UTC_Z,
        )
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
            (b"location", link.encode()),
        ]
