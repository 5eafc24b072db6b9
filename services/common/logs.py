"""Structured logs: one JSON object per line, with the ids that tie a line to a request or a message.

``setup_logging(service, level)`` is called once by ``rectify serve`` before the process starts; faust and
mode are told not to reconfigure logging, and uvicorn's loggers get the same formatter. The ids come from
context variables: intake's HTTP edge sets ``correlation_id`` per request, the inbox sets ``correlation_id``
and ``case_id`` while it applies a batch of one correlation (one case), and code that knows a submission
binds ``submission_id``.

Never log personal data: the formatter drops ``extra`` keys that name complainant data, whatever a caller passes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

CORRELATION_ID: ContextVar[str | None] = ContextVar("correlation_id", default=None)
CASE_ID: ContextVar[str | None] = ContextVar("case_id", default=None)
SUBMISSION_ID: ContextVar[str | None] = ContextVar("submission_id", default=None)
CONTEXT: dict[str, ContextVar[str | None]] = {
    "correlation_id": CORRELATION_ID,
    "case_id": CASE_ID,
    "submission_id": SUBMISSION_ID,
}
# extra keys never written, whatever a caller passes: complainants' identity and contact
PERSONAL_KEYS = frozenset(
    {"complainant", "complainants", "name", "phone", "email", "id_number", "address", "contact", "body", "raw"}
)
# attributes every LogRecord has; anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


@contextlib.contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Set correlation_id / case_id / submission_id for the lines logged inside the block."""
    tokens = [(CONTEXT[k], CONTEXT[k].set(v)) for k, v in ids.items() if k in CONTEXT]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, service, the bound ids, and the call's ``extra`` (minus personal keys)."""

    def __init__(self, service: str = "rectify", *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        for key, var in CONTEXT.items():
            value = var.get()
            if value:
                out[key] = value
        for key, value in vars(record).items():
            if key in _STANDARD or key in out or key.lower() in PERSONAL_KEYS or key.startswith("_"):
                continue
            out[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stderr for the root logger and uvicorn's loggers; idempotent."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    with contextlib.suppress(ImportError):
        from uvicorn.config import LOGGING_CONFIG

        # uvicorn.run applies this dict (its default argument, so edit it in place): same JSON lines, via the root
        LOGGING_CONFIG["formatters"] = {"json": {"()": JsonFormatter, "service": service}}
        LOGGING_CONFIG["handlers"] = {
            "default": {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            "access": {"formatter": "json", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        }
