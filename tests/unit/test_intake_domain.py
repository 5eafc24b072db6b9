from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.intake.domain import (
    ComplaintRequest,
    case_number,
    fingerprint,
    hash_secret,
    new_api_key,
    secret_matches,
    split_api_key,
)

GOOD = {
    "category": "inaction",
    "unit_id": "meiwan",
    "description": "路灯坏了三个月无人修",
    "complainant": {"name": "张三", "phone": "13800000000"},
}


def test_a_good_request_validates() -> None:
    req = ComplaintRequest.model_validate(GOOD)
    assert req.severity == "general"
    assert req.complainant.phone == "13800000000"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"surprise": 1}, "surprise"),
        ({"description": ""}, "description"),
        ({"description": "x" * 4001}, "description"),
        ({"unit_id": "梅湾"}, "unit_id"),
        ({"severity": "apocalyptic"}, "severity"),
        ({"happened_on": "yesterday"}, "happened_on"),
        ({"complainant": {"name": "张三", "phone": "call me"}}, "complainant.phone"),
        ({"complainant": {"name": "张三", "email": "not-an-email"}}, "complainant.email"),
        ({"complainant": {"name": "张三", "ssn": "1"}}, "complainant.ssn"),
        ({"category": 7}, "category"),
    ],
)
def test_bad_fields_are_named(change: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as err:
        ComplaintRequest.model_validate_json(__import__("json").dumps(GOOD | change))
    assert field in {".".join(str(p) for p in e["loc"]) for e in err.value.errors()}


def test_case_numbers_use_the_china_date() -> None:
    assert case_number(datetime(2026, 11, 23, 17, 0, tzinfo=UTC), 42) == "RC-20261124-000042"


def test_api_keys_are_random_and_only_hashes_are_kept() -> None:
    key, key_id, stored = new_api_key()
    other, other_id, _ = new_api_key()
    assert key != other and key_id != other_id
    parts = split_api_key(key)
    assert parts is not None and parts[0] == key_id
    assert secret_matches(parts[1], stored)
    assert not secret_matches(parts[1] + "x", stored)
    assert stored == hash_secret(parts[1]) and parts[1].encode() not in stored


@pytest.mark.parametrize("bad", ["", "rk_", "rk__x", "xx_abc_def", "rk_abc", "rk_a_" + "x" * 300])
def test_malformed_keys_are_rejected(bad: str) -> None:
    assert split_api_key(bad) is None


def test_fingerprint_binds_the_exact_body() -> None:
    assert fingerprint(b"{}") == fingerprint(b"{}")
    assert fingerprint(b"{}") != fingerprint(b"{ }")
