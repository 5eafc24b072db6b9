"""``rectify import FILE``: a hotline export (CSV or JSONL) filed through the intake HTTP API.

Every row is validated here first, as intake validates a request (the strict ``ComplaintRequest`` and the
reference data), then posted to ``POST /v1/complaints`` by a bounded number of concurrent requests, so it
takes the real path: authentication, rate limit, group commit. Each row's ``Idempotency-Key`` is
``import:<record_id>`` (a hash of the row without one), so running the import again files nothing twice.
Bad rows are reported with their line numbers, field and reason, and never stop the run.

Exit status: 0 when every row was accepted, 1 when some were bad, 2 on a usage error (no key, unreadable
file, unknown columns, a key the API refuses). docs/intake.md describes the file format.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

COMPLAINANT = ("name", "phone", "email")
COLUMNS = (
    "record_id",
    "category",
    "unit_id",
    "cadre",
    "description",
    "location",
    "happened_on",
    "severity",
    *(f"complainant_{f}" for f in COMPLAINANT),
)
REQUIRED = ("category", "unit_id", "description", "complainant_name")
PLAIN_KEY = re.compile(r"^[\x21-\x7e]{1,190}$")
ATTEMPTS = 5  # for network errors and 5xx; a 429 waits as long as Retry-After says, up to MAX_WAITS times
MAX_WAITS = 60
console = Console(stderr=True)


class UsageError(Exception):
    """The whole run cannot go on: exit status 2."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    record_id: str | None
    body: bytes  # exactly what is posted: the validated complaint as JSON
    key: str  # Idempotency-Key


@dataclass(frozen=True, slots=True)
class Bad:
    line: int
    record_id: str | None
    field: str
    reason: str


@dataclass
class Report:
    rows: int = 0
    accepted: int = 0
    bad: list[Bad] = field(default_factory=list)


# ---------------------------------------------------------------------------- reading and validating


def read_rows(path: Path, fmt: str = "auto") -> tuple[list[Row], list[Bad], int]:
    """(valid rows, bad rows, total rows) of a CSV (header row) or JSONL file."""
    kind = fmt if fmt != "auto" else {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(path.suffix.lower())
    if kind not in ("csv", "jsonl"):
        raise UsageError(f"cannot tell the format of {path.name}: name it .csv or .jsonl, or pass --format")
    try:
        raw = list(_csv_records(path) if kind == "csv" else _jsonl_records(path))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    rows: list[Row] = []
    bad: list[Bad] = []
    first: dict[str, tuple[int, bytes]] = {}  # idempotency key -> (line, body) of its first row
    for line, record in raw:
        checked = record if isinstance(record, Bad) else validate(line, record)
        if isinstance(checked, list):
            bad.extend(checked)
        elif isinstance(checked, Bad):
            bad.append(checked)
        elif checked.key in first and first[checked.key][1] != checked.body:
            reason = f"record_id already used on line {first[checked.key][0]} with other content"
            bad.append(Bad(line, checked.record_id, "record_id", reason))
        else:
            first.setdefault(checked.key, (line, checked.body))
            rows.append(checked)
    return rows, bad, len(raw)


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | Bad]]:
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheets write a byte-order mark
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        _check_header(header)
        line = reader.line_num + 1
        for cells in reader:
            if any(c.strip() for c in cells):
                if len(cells) != len(header):
                    yield line, Bad(line, None, "row", f"{len(cells)} cells; the header has {len(header)}")
                else:
                    yield line, dict(zip(header, cells, strict=True))
            line = reader.line_num + 1


def _check_header(header: list[str]) -> None:
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing or len(set(header)) != len(header):
        raise UsageError(
            f"bad header row: unknown {unknown or '-'}, missing {missing or '-'}, columns: {', '.join(COLUMNS)}"
        )


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | Bad]]:
    with path.open(encoding="utf-8-sig") as f:
        for line, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                record = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                yield line, Bad(line, None, "line", f"not JSON: {exc}")
                continue
            if not isinstance(record, dict):
                yield line, Bad(line, None, "line", "each line must be a JSON object")
                continue
            yield line, record


def validate(line: int, record: dict[str, Any]) -> Row | list[Bad]:
    """A row as intake will see it: the strict ComplaintRequest and the reference data, or what is wrong."""
    from services.common.http import field_errors  # imported here: `rectify` starts fast for every other command
    from services.common.reference import reference
    from services.intake.domain import ComplaintRequest

    fields = {k: v for k, v in record.items() if v is not None and v != ""}
    record_id = fields.pop("record_id", None)
    record_id = None if record_id is None else str(record_id).strip() or None
    person = fields.pop("complainant", {})
    if isinstance(person, dict):
        person = person | {f: fields.pop(f"complainant_{f}") for f in COMPLAINANT if f"complainant_{f}" in fields}
    body = fields | {"complainant": person}
    ref = reference()
    reasons = {
        "category": f"unknown category; one of {', '.join(sorted(ref.categories))}",
        "unit_id": "unknown unit id",
    }

    def unknown(category: object, unit_id: object) -> list[dict[str, str]]:
        return [{"field": f, "reason": reasons[f]} for f in ref.unknown(category, unit_id)]

    raw = orjson.dumps(body)
    try:
        complaint = ComplaintRequest.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        errors = field_errors(exc, raw, lambda parsed: unknown(parsed.get("category"), parsed.get("unit_id")))
        return [Bad(line, record_id, _column(e["field"]), e["reason"]) for e in errors]
    if bad := unknown(complaint.category, complaint.unit_id):
        return [Bad(line, record_id, e["field"], e["reason"]) for e in bad]
    sent = orjson.dumps(complaint.model_dump(mode="json", exclude_none=True))
    return Row(line, record_id, sent, idempotency_key(record_id, sent))


def _column(name: str) -> str:
    return name.replace("complainant.", "complainant_")


def idempotency_key(record_id: str | None, body: bytes) -> str:
    """``import:<record_id>``; a hash when the row has no record id or one that is not a plain ASCII token."""
    if record_id is not None and PLAIN_KEY.match(record_id):
        return f"import:{record_id}"
    seed = record_id.encode() if record_id is not None else body
    return f"import:sha256:{hashlib.sha256(seed).hexdigest()[:48]}"


# ---------------------------------------------------------------------------- sending


async def send_rows(
    client: httpx.AsyncClient, rows: list[Row], concurrency: int, done: Callable[[], None] = lambda: None
) -> list[Bad]:
    """Post every row, ``concurrency`` at a time; the rows intake refused. Raises UsageError on 401/403."""
    queue: asyncio.Queue[Row] = asyncio.Queue()
    for row in rows:
        queue.put_nowait(row)
    refused: list[Bad] = []

    async def worker() -> None:
        while not queue.empty():
            row = queue.get_nowait()
            refused.extend(await send_row(client, row))
            done()

    try:
        async with asyncio.TaskGroup() as group:  # a refused key stops every worker at once
            for _ in range(max(1, concurrency)):
                group.create_task(worker())
    except* UsageError as failed:
        raise failed.exceptions[0] from None
    return refused


async def send_row(client: httpx.AsyncClient, row: Row) -> list[Bad]:
    failures = waits = 0
    while True:
        try:
            r = await client.post(
                "/v1/complaints",
                content=row.body,
                headers={"Content-Type": "application/json", "Idempotency-Key": row.key},
            )
        except httpx.TransportError as exc:
            failures += 1
            if failures >= ATTEMPTS:
                return [Bad(row.line, row.record_id, "http", f"intake unreachable: {exc!r}")]
            await asyncio.sleep(0.5 * 2**failures)
            continue
        if r.status_code == 202:
            return []
        if r.status_code == 429 and waits < MAX_WAITS:
            waits += 1
            await asyncio.sleep(_retry_after(r))
            continue
        if r.status_code >= 500 and failures + 1 < ATTEMPTS:
            failures += 1
            await asyncio.sleep(0.5 * 2**failures)
            continue
        return _refusal(row, r)


def _refusal(row: Row, r: httpx.Response) -> list[Bad]:
    problem = _json(r)
    if r.status_code in (401, 403):
        raise UsageError(f"intake refused the key ({r.status_code}): {problem.get('detail', r.text[:200])}")
    if r.status_code == 409:
        reason = "imported before with other content (409); give the changed record a new record_id"
        return [Bad(row.line, row.record_id, "record_id", reason)]
    errors = problem.get("errors") or [{"field": "row", "reason": problem.get("detail", r.text[:200])}]
    return [Bad(row.line, row.record_id, _column(e["field"]), f"{e['reason']} ({r.status_code})") for e in errors]


def _json(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(r: httpx.Response) -> float:
    value = r.headers.get("retry-after", "1")
    return float(value) if value.replace(".", "", 1).isdigit() else 1.0


async def import_path(
    path: Path, client: httpx.AsyncClient, *, concurrency: int = 16, fmt: str = "auto", show: bool = True
) -> Report:
    """Validate and file every row of ``path``; raises UsageError when the whole run cannot go on."""
    rows, bad, total = read_rows(path, fmt)
    report = Report(rows=total, bad=bad)
    with Progress(
        TextColumn("[bold]importing[/bold] {task.fields[name]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not show,
    ) as progress:
        task = progress.add_task("import", total=total, name=path.name, completed=len({b.line for b in bad}))
        refused = await send_rows(client, rows, concurrency, lambda: progress.advance(task))
    report.bad = sorted(bad + refused, key=lambda b: (b.line, b.field))
    report.accepted = len(rows) - len({b.line for b in refused})
    return report


# ---------------------------------------------------------------------------- the command


def import_records(
    file: Annotated[Path, typer.Argument(help="a CSV (with a header row) or JSONL export of hotline records")],
    intake: Annotated[str, typer.Option(envvar="RECTIFY_INTAKE_URL", help="intake API base URL")] = (
        "http://127.0.0.1:8000"
    ),
    key: Annotated[str, typer.Option(envvar="RECTIFY_API_KEY", help="a filing channel's API key")] = "",
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="requests in flight at once")] = 16,
    errors: Annotated[Path | None, typer.Option(help="also write the bad rows to this CSV file")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto (from the file name), csv or jsonl")] = "auto",
) -> None:
    """Import a hotline export through the intake API. Bad rows are reported, never fatal; reruns file nothing twice."""
    if not key:
        console.print("[red]--key (or RECTIFY_API_KEY) is required[/red]")
        raise typer.Exit(2)
    try:
        report = asyncio.run(_run(file, intake, key, concurrency, fmt))
    except UsageError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _print(report)
    if errors is not None:
        write_errors(errors, report.bad)
    raise typer.Exit(1 if report.bad else 0)


async def _run(file: Path, intake: str, key: str, concurrency: int, fmt: str) -> Report:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=intake, headers=headers, limits=limits, timeout=30) as client:
        return await import_path(file, client, concurrency=concurrency, fmt=fmt, show=console.is_terminal)


def _print(report: Report) -> None:
    if report.bad:
        table = Table(title=f"bad rows ({len({b.line for b in report.bad})})", show_lines=False)
        for column in ("line", "record_id", "field", "reason"):
            table.add_column(column)
        for b in report.bad[:50]:
            table.add_row(str(b.line), b.record_id or "", b.field, b.reason)
        console.print(table)
        if len(report.bad) > 50:
            console.print(f"... and {len(report.bad) - 50} more (--errors FILE writes them all)")
    rejected = len({b.line for b in report.bad})
    console.print(f"{report.rows} rows: {report.accepted} accepted, {rejected} bad")


def write_errors(path: Path, bad: list[Bad]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["line", "record_id", "field", "reason"])
        out.writerows([b.line, b.record_id or "", b.field, b.reason] for b in bad)
