"""Open311 GeoReport v2 on intake: our categories are its services, our cases its service requests.

Paths under ``/open311/v2/``, JSON or XML by the path's extension (``requests.json``, ``requests.xml``).
Filing takes the same door as ``POST /v1/complaints``: the same API keys (the spec's ``api_key`` parameter,
or the Authorization / X-API-Key headers), the same rate limit, the same strict validation and reference
checks, the same ``Submitter``. Listing shows only the cases the agency may see (``repository.find_cases``,
the rule of ``GET /v1/cases``). The service list and definitions are public reference data and need no key.
Errors are the spec's array of ``{code, description}``. docs/intake.md has the field mapping.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import ValidationError

from services.common import http
from services.common.contracts import Command, FileComplaint, Role, Severity
from services.common.reference import reference
from services.intake.adapters import repository as repo
from services.intake.adapters.repository import Agency, CaseAccess, CaseFilter
from services.intake.adapters.vault import Contact
from services.intake.domain import CHINA, ComplaintRequest, complainant_ref, fingerprint
from services.intake.service import IdempotencyConflict, Submit

Authenticate = Callable[[Request, str | None], Awaitable[Agency]]
Fields = dict[str, str]

PREFIX = "/open311/v2"
GROUP = "作风"
FINISHED = ("closed", "dismissed", "merged")  # our statuses that Open311 calls "closed"; every other is "open"
WINDOW = timedelta(days=90)  # the spec's default and longest start_date..end_date range
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
CASE_ID = re.compile(r"^RC-[0-9]{8}-[0-9]{6,}$")
STANDARD_FIELDS = frozenset(
    {
        "jurisdiction_id",  # one jurisdiction here: accepted and ignored
        "service_code",
        "lat",  # lat/long are checked but not stored: the location we keep is address_string
        "long",
        "address_string",
        "address_id",  # accepted and ignored
        "email",
        "device_id",  # accepted and ignored
        "account_id",  # accepted and ignored
        "first_name",
        "last_name",
        "phone",
        "description",
        "media_url",  # accepted and ignored: intake keeps no attachments
        "api_key",
    }
)
SEVERITY_NAMES = {
    Severity.URGENT: "紧急 (2 小时)",
    Severity.UTILITIES: "水电气热 (24 小时)",
    Severity.GENERAL: "一般",
    Severity.COMPLEX: "复杂",
}
# our field -> the Open311 name an error message should use
OPEN311_NAMES = {
    "category": "service_code",
    "unit_id": "attribute[unit_id]",
    "cadre": "attribute[cadre]",
    "happened_on": "attribute[happened_on]",
    "severity": "attribute[severity]",
    "location": "address_string",
    "complainant": "first_name/last_name",
    "complainant.name": "first_name/last_name",
    "complainant.phone": "phone",
    "complainant.email": "email",
}
PLURALS = {"attributes": "attribute", "values": "value"}  # XML: the element of each item of a list


class Open311Error(Exception):
    """An error answered the Open311 way: the HTTP status, and one ``{code, description}`` per problem."""

    def __init__(self, status: int, *descriptions: str, headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions
        self.headers = headers

    @classmethod
    def of(cls, problem: http.Problem) -> Open311Error:
        """Our problem+json errors, told the Open311 way (422 is the spec's 400)."""
        status = 400 if problem.status == 422 else problem.status
        described = [f"{_open311_name(e['field'])}: {e['reason']}" for e in problem.errors] or [problem.detail]
        retry = problem.extra.get("retry_after")
        return cls(status, *described, headers={"Retry-After": str(retry)} if retry else None)


class Open311Route(APIRoute):
    """Every failure on these paths, from authentication to validation, answers in the spec's error format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            fmt = request.path_params.get("fmt", "json")
            try:
                return await handler(request)
            except Open311Error as exc:
                return _errors(fmt, exc)
            except http.Problem as exc:
                return _errors(fmt, Open311Error.of(exc))
            except RequestValidationError as exc:
                described = [f"{e['field']}: {e['reason']}" for e in http.field_errors(exc)]
                return _errors(fmt, Open311Error(400, *described))

        return guarded


def router(authenticate: Authenticate, max_body_bytes: int) -> APIRouter:
    """The GeoReport v2 endpoints, sharing intake's authentication (with its rate limit) and Submitter."""
    api = APIRouter(prefix=PREFIX, route_class=Open311Route, include_in_schema=False)

    async def agency(request: Request, form: Fields | None = None) -> Agency:
        key = (form or {}).get("api_key") or request.query_params.get("api_key") or _header_key(request)
        return await authenticate(request, key)

    @api.get("/services.{fmt}")
    async def service_list(fmt: str) -> Response:
        return _render(_format(fmt), [_service(code) for code in sorted(reference().categories)], "services")

    @api.get("/services/{service_code}.{fmt}")
    async def service_definition(service_code: str, fmt: str) -> Response:
        fmt = _format(fmt)
        if service_code not in reference().categories:
            raise Open311Error(404, f"no service {service_code!r}; see services.{fmt}")
        return _render(fmt, _definition(service_code), "service_definition")

    @api.post("/requests.{fmt}")
    async def create_request(request: Request, fmt: str) -> Response:
        fmt = _format(fmt)
        form = await _read_form(request, max_body_bytes)
        who = await agency(request, form)
        if who.role is not Role.CHANNEL or who.channel is None:
            raise Open311Error(403, "only a filing channel may file service requests")
        key = _idempotency_key(request)
        body = _complaint(form)
        submission = await _submit(request, who, key, body)
        notice = f"已受理，案件编号 {submission.case_id}; accepted, filed asynchronously: see tokens/{{token}}"
        answer = {
            "service_request_id": submission.case_id,
            "token": str(submission.submission_id),
            "service_notice": notice,
            "account_id": None,
        }
        return _render(fmt, [answer], "service_requests")

    @api.get("/requests.{fmt}")
    async def list_requests(request: Request, fmt: str) -> Response:
        fmt = _format(fmt)
        who = await agency(request)
        where, size, page = _listing(request.query_params)
        rows = await repo.find_cases(request.app.state.pool, who, size, (page - 1) * size, where)
        return _render(fmt, [_service_request(r) for r in rows], "service_requests")

    @api.get("/requests/{service_request_id}.{fmt}")
    async def get_request(request: Request, service_request_id: str, fmt: str) -> Response:
        fmt = _format(fmt)
        who = await agency(request)
        rows = []
        if CASE_ID.match(service_request_id):
            rows = await repo.find_cases(request.app.state.pool, who, 1, 0, CaseFilter(case_ids=[service_request_id]))
        if not rows:
            raise Open311Error(404, f"no service request {service_request_id} for this agency")
        return _render(fmt, [_service_request(rows[0])], "service_requests")

    @api.get("/tokens/{token}.{fmt}")
    async def get_token(request: Request, token: str, fmt: str) -> Response:
        fmt = _format(fmt)
        who = await agency(request)
        submission_id = _uuid(token)
        found = submission_id and await repo.get_submission(request.app.state.pool, who.agency_id, submission_id)
        if not found:
            raise Open311Error(404, f"no token {token} for this agency")
        return _render(fmt, [{"service_request_id": found.case_id, "token": token}], "service_requests")

    return api


# ---------------------------------------------------------------------------- services


def _service(code: str) -> dict[str, Any]:
    category = reference().categories[code]
    return {
        "service_code": code,
        "service_name": category.zh,
        "description": category.en,
        "metadata": True,  # the unit complained about is a required attribute: see services/{code}.json
        "type": "realtime",
        "keywords": f"{category.zh},{category.en}",
        "group": GROUP,
    }


def _definition(code: str) -> dict[str, Any]:
    units = sorted(reference().units.values(), key=lambda u: (u.tier != "township", u.id))
    attributes = [
        _attribute(1, "unit_id", "singlevaluelist", True, "被投诉单位 / the unit complained about", "a unit id")
        | {"values": [{"key": u.id, "name": u.zh} for u in units]},
        _attribute(2, "severity", "singlevaluelist", False, "紧急程度 / severity", "default: general")
        | {"values": [{"key": s.value, "name": name} for s, name in SEVERITY_NAMES.items()]},
        _attribute(3, "cadre", "string", False, "涉及的干部 / the cadre concerned", "at most 200 characters"),
        _attribute(4, "happened_on", "string", False, "发生日期 / when it happened", "a date: YYYY-MM-DD"),
    ]
    return {"service_code": code, "attributes": attributes}


def _attribute(order: int, code: str, datatype: str, required: bool, description: str, hint: str) -> dict[str, Any]:
    return {
        "variable": True,
        "code": code,
        "datatype": datatype,
        "required": required,
        "datatype_description": hint,
        "order": order,
        "description": description,
    }


ATTRIBUTES = frozenset({"unit_id", "severity", "cadre", "happened_on"})  # the codes _definition lists


# ---------------------------------------------------------------------------- filing


async def _read_form(request: Request, max_bytes: int) -> Fields:
    """The request's fields, form-encoded (the spec) or a JSON object; attributes as ``attribute[code]``."""
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > max_bytes:
            raise Open311Error(413, f"the body may be at most {max_bytes} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if ctype == "application/x-www-form-urlencoded":
            pairs = parse_qsl(bytes(raw).decode("utf-8"), keep_blank_values=True, max_num_fields=100)
        elif ctype == "application/json":
            pairs = _json_pairs(bytes(raw))
        else:
            raise Open311Error(415, "send the request as application/x-www-form-urlencoded (or application/json)")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Open311Error(400, f"the body cannot be read: {exc}") from None
    return _fields(pairs)


def _json_pairs(raw: bytes) -> list[tuple[str, str]]:
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    attributes = data.pop("attribute", {})
    if not isinstance(attributes, dict):
        raise ValueError("attribute must be an object of attribute codes and values")
    items = [*data.items(), *((f"attribute[{k}]", v) for k, v in attributes.items())]
    pairs = []
    for name, value in items:
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError(f"{name} must be a string or a number")
        pairs.append((str(name), str(value)))
    return pairs


def _fields(pairs: list[tuple[str, str]]) -> Fields:
    fields: Fields = {}
    problems = []
    for name, value in pairs:
        attribute = name[len("attribute[") : -1] if name.startswith("attribute[") and name.endswith("]") else None
        if name in fields:
            problems.append(f"{name}: given more than once")
        elif attribute is None and name not in STANDARD_FIELDS:
            problems.append(f"{name}: unknown field; see the GeoReport v2 POST Service Request fields")
        elif attribute is not None and attribute not in ATTRIBUTES:
            problems.append(f"{name}: unknown attribute; see services/{{service_code}}.json")
        fields[name] = value.strip()
    if problems:
        raise Open311Error(400, *problems)
    return {k: v for k, v in fields.items() if v != ""}  # an empty form field is an absent one


def _complaint(form: Fields) -> ComplaintRequest:
    """The complaint the form describes, validated exactly as POST /v1/complaints validates its body."""
    problems = _location_problems(form)
    person = {
        "name": _full_name(form.get("first_name"), form.get("last_name")),
        "phone": form.get("phone"),
        "email": form.get("email"),
    }
    body = {
        "category": form.get("service_code"),
        "unit_id": form.get("attribute[unit_id]"),
        "description": form.get("description"),
        "location": form.get("address_string"),
        "cadre": form.get("attribute[cadre]"),
        "happened_on": form.get("attribute[happened_on]"),
        "severity": form.get("attribute[severity]"),
        "complainant": {k: v for k, v in person.items() if v is not None},
    }
    ref = reference()
    code = body["category"]
    definition = f"services/{code}.json" if code in ref.categories else "services.json"  # where the units are listed
    reasons = {"category": "unknown service; see services.json", "unit_id": f"unknown unit; see {definition}"}

    def unknown(category: object, unit_id: object) -> list[dict[str, str]]:
        return [{"field": f, "reason": reasons[f]} for f in ref.unknown(category, unit_id)]

    raw = orjson.dumps({k: v for k, v in body.items() if v is not None})
    try:
        complaint = ComplaintRequest.model_validate_json(raw, strict=True)
        errors = unknown(complaint.category, complaint.unit_id)
    except ValidationError as exc:
        errors = http.field_errors(exc, raw, lambda parsed: unknown(parsed.get("category"), parsed.get("unit_id")))
    problems += [f"{_open311_name(e['field'])}: {e['reason']}" for e in errors]
    if problems:
        raise Open311Error(400, *problems)
    return complaint


def _location_problems(form: Fields) -> list[str]:
    lat, lon = form.get("lat"), form.get("long")
    if (lat is None) != (lon is None):
        return ["lat/long: give both or neither"]
    if lat is not None and lon is not None:
        try:
            if not (-90 <= float(lat) <= 90 and -180 <= float(lon) <= 180):
                return ["lat/long: out of range"]
        except ValueError:
            return ["lat/long: must be decimal degrees"]
        return []
    if "address_string" not in form and "address_id" not in form:
        return ["location: required; send address_string (or lat and long)"]
    return []


def _full_name(first: str | None, last: str | None) -> str | None:
    """Chinese names are family name first, without a space; others "first last"."""
    if first and last:
        return f"{last}{first}" if re.search(r"[\u3400-\u9fff]", last + first) else f"{first} {last}"
    return first or last


async def _submit(request: Request, who: Agency, key: str | None, body: ComplaintRequest) -> repo.Submission:
    ref = complainant_ref()
    person = body.complainant

    def command(_: str) -> Command:
        return FileComplaint(
            channel=who.channel,  # type: ignore[arg-type]
            category=body.category,
            unit_id=body.unit_id,
            cadre=body.cadre,
            description=body.description,
            location=body.location,
            happened_on=body.happened_on,
            severity=body.severity,
            complainant_ref=ref,
        )

    item = Submit(
        who=who,
        idempotency_key=key,
        digest=fingerprint(b"open311:" + body.model_dump_json().encode()),
        command=command,
        contact=Contact(person.name, person.phone, person.email),
        complainant_ref=ref,
    )
    try:
        submission: repo.Submission = await request.app.state.submitter.submit(item)
    except IdempotencyConflict:
        raise Open311Error(409, "this Idempotency-Key was used with a different request") from None
    return submission


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise Open311Error(400, "Idempotency-Key: 1 to 200 printable ASCII characters")
    return key


# ---------------------------------------------------------------------------- reading


def _listing(params: Any) -> tuple[CaseFilter, int, int]:
    """GET Service Requests' parameters: the filter, the page size and the page (those two are ours)."""
    size, page = _int(params, "page_size", 50, 1, 200), _int(params, "page", 1, 1, 100_000)
    ids = _csv(params.get("service_request_id"))
    if ids is not None:  # the spec: it overrides every other parameter
        return CaseFilter(case_ids=ids), size, page
    codes = _csv(params.get("service_code"))
    unknown = [c for c in codes or [] if c not in reference().categories]
    if unknown:
        raise Open311Error(400, f"service_code: unknown service {', '.join(unknown)}; see services.json")
    wanted = set(_csv(params.get("status")) or ["open", "closed"])
    if not wanted <= {"open", "closed"}:
        raise Open311Error(400, "status: open, closed, or both, comma separated")
    start, end = _date(params, "start_date"), _date(params, "end_date")
    if start and end and end - start > WINDOW:
        raise Open311Error(400, "start_date..end_date may span at most 90 days")
    try:
        if start is None:
            start = (end or datetime.now(UTC)) - WINDOW
        if end is None and params.get("start_date"):
            end = start + WINDOW
    except OverflowError:
        raise Open311Error(400, "start_date/end_date: out of range") from None
    return (
        CaseFilter(
            categories=codes,
            statuses=list(FINISHED) if wanted == {"closed"} else None,
            not_statuses=list(FINISHED) if wanted == {"open"} else None,
            filed_from=start,
            filed_to=end,
        ),
        size,
        page,
    )


def _csv(value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _int(params: Any, name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise Open311Error(400, f"{name}: a whole number from {low} to {high}")
    return int(value)


def _date(params: Any, name: str) -> datetime | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise Open311Error(400, f"{name}: a W3C date and time with its zone, e.g. 2026-01-01T00:00:00Z")
    return when


def _service_request(case: CaseAccess) -> dict[str, Any]:
    ref = reference()
    category = ref.categories.get(case.category or "")
    unit = ref.units.get(case.responsible_unit_id or "")
    return {
        "service_request_id": case.case_id,
        "status": "closed" if case.status in FINISHED else "open",
        "status_notes": case.status,  # ours, finer: received, filed, assigned, acknowledged, ...
        "service_name": category.zh if category else None,
        "service_code": case.category,
        "agency_responsible": unit.zh if unit else None,
        "requested_datetime": _w3c(case.filed_at),
        "updated_datetime": _w3c(case.updated_at),
    }


def _w3c(when: datetime | None) -> str | None:
    return when.astimezone(CHINA).isoformat(timespec="seconds") if when else None


# ---------------------------------------------------------------------------- rendering


def _format(fmt: str) -> str:
    if fmt not in ("json", "xml"):
        raise Open311Error(404, "unknown format; use .json or .xml")
    return fmt


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _header_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.headers.get("x-api-key")


def _open311_name(field: str) -> str:
    return OPEN311_NAMES.get(field, field)


def _render(fmt: str, data: Any, root: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if fmt == "xml":
        return Response(_xml(root, data), status, headers, media_type="text/xml; charset=utf-8")
    return Response(orjson.dumps(data), status, headers, media_type="application/json; charset=utf-8")


def _errors(fmt: str, error: Open311Error) -> Response:
    body = [{"code": error.status, "description": d} for d in error.descriptions]
    return _render(fmt if fmt == "xml" else "json", body, "errors", error.status, error.headers)


ITEMS = {"services": "service", "service_requests": "request", "errors": "error"}


def _xml(root: str, data: Any) -> bytes:
    """The spec's XML: a root element, one child per item, one element per field."""
    top = ET.Element(root)
    if isinstance(data, list):
        for item in data:
            _fill(ET.SubElement(top, ITEMS[root]), item)
    else:
        _fill(top, data)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(top, encoding="unicode").encode()


def _fill(element: ET.Element, value: Any) -> None:
    if isinstance(value, dict):
        for name, inner in value.items():
            child = ET.SubElement(element, name)
            if isinstance(inner, list):
                for item in inner:
                    _fill(ET.SubElement(child, PLURALS[name]), item)
            else:
                _fill(child, inner)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)
