"""What scoring reads of a case event: its identity, its place in the log and a few payload fields.

Reading it off the wire is ``services.scoring.adapters.wire``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import NamedTuple


class ScoredEvent(NamedTuple):
    event_id: uuid.UUID
    case_id: str
    version: int
    recorded_at: datetime
    kind: str
    at: datetime | None = None  # when it happened (filed_at for CaseFiled), for the kinds whose time scoring uses
    unit_id: str | None = None  # CaseFiled: complained about; CaseAssigned: responsible; CaseTransferred: to
    on_time: bool | None = None  # CaseAcknowledged, RectificationSubmitted
    which: str | None = None  # DeadlinePassed
    holder: str | None = None  # DeadlinePassed
    rating: str | None = None  # SatisfactionRated
