"""The filing route's 202, built directly on the hot path: the documented SubmissionOut shape, byte for byte the
model's own JSON (which the status endpoint answers, so a client sees one form of each instant), and its Location
header."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.intake.adapters.repository import Submission
from services.intake.entrypoints.http import SubmissionOut, _Accepted

CHINA = timezone(timedelta(hours=8))
SUBMISSIONS = [
    Submission(
        uuid.uuid4(), "hotline", None, b"d", "FileComplaint", "RC-20261123-000001", "received", None, None, None,
        datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC), None, "cp-00000000000000000001",
    ),
    Submission(
        uuid.uuid4(), "hotline", "k", b"d", "AssignCase", "RC-20261123-000002", "refused", "not_allowed",
        'a "quoted" reason\\ 梅湾 \u2028', 3, datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 17, 0, 0, 5, tzinfo=CHINA), None,
    ),
    Submission(
        uuid.uuid4(), "hotline", "k2", b"d", "AcknowledgeCase", "RC-20261123-000003", "applied", None, None, 7,
        datetime(2026, 11, 23, 9, 0, 0, 500000, tzinfo=CHINA), datetime(2026, 11, 24, tzinfo=UTC), None,
    ),
    Submission(
        uuid.uuid4(), "hotline", "k3", b"d", "AcknowledgeCase", "RC-20261123-000004", "applied", None, None, 8,
        datetime(2026, 11, 23, 9, 0, tzinfo=timezone(timedelta(0))), datetime(1999, 1, 1, tzinfo=CHINA), None,
    ),
]  # fmt: skip


@pytest.mark.parametrize("s", SUBMISSIONS, ids=lambda s: s.status)
def test_the_202_is_the_documented_answer_byte_for_byte(s: Submission) -> None:
    link = f"/v1/submissions/{s.submission_id}"
    answer = _Accepted(s)
    assert answer.status_code == 202
    assert answer.body == SubmissionOut.of(s).model_dump_json().encode()  # what GET /v1/submissions/{id} answers
    assert SubmissionOut.model_validate_json(answer.body) == SubmissionOut.of(s)
    assert answer.raw_headers == [
        (b"content-length", str(len(answer.body)).encode()),
        (b"content-type", b"application/json"),
        (b"location", link.encode()),
    ]
