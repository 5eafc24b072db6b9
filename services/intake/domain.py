"""Intake's pure rules: what a filing request must look like, API keys, case numbers, fingerprints."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import date, datetime, timedelta, timezone
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints

from services.common.contracts import Ident, Role, Severity, ShortText, Text
from services.intake.randomness import random_bytes

CHINA = timezone(timedelta(hours=8))
Phone = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 -]{4,19}$")]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Complainant(Strict):
    """Personal data: stays in intake's vault, never leaves it."""

    name: ShortText
    phone: Phone | None = None
    email: EmailStr | None = None


class ComplaintRequest(Strict):
    """A complaint as a filing channel submits it. The channel comes from the API key, not from here."""

    category: Ident
    unit_id: Ident
    cadre: ShortText | None = None
    description: Text
    location: ShortText | None = None
    happened_on: date | None = None
    severity: Severity = Severity.GENERAL
    complainant: Complainant


def may_access(role: Role, agency_id: str, unit_id: str | None, filed_by: str, responsible_unit_id: str | None) -> bool:
    """Supervisors see every case; a filing channel the cases it filed; a unit the cases it is responsible for now."""
    if role is Role.SUPERVISOR:
        return True
    if role is Role.CHANNEL:
        return agency_id == filed_by
    if role is Role.UNIT:
        return unit_id is not None and unit_id == responsible_unit_id
    return False


def fingerprint(raw_body: bytes) -> bytes:
    """What an idempotency key is bound to: the exact request body."""
    return hashlib.sha256(raw_body).digest()


def case_number(received_at: datetime, seq: int) -> str:
    """Human-readable case id: RC-<China date>-<6-digit sequence>."""
    return case_numbers(received_at, [seq])[0]


def case_numbers(received_at: datetime, seqs: list[int]) -> list[str]:
    """The case ids of one batch, received at the same moment (the date is formatted once)."""
    day = f"{received_at.astimezone(CHINA):%Y%m%d}"
    return [f"RC-{day}-{seq:06d}" for seq in seqs]


def complainant_ref() -> str:
    return f"cp-{random_bytes(10).hex()}"


def new_api_key() -> tuple[str, str, bytes]:
    """(full key to hand out once, key id, hash to store)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"rk_{key_id}_{secret}", key_id, hash_secret(secret)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def split_api_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "rk" or not parts[1] or not parts[2] or len(key) > 200:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
