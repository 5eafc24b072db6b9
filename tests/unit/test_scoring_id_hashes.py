"""An epoch's id hash is summed without a Python integer per event (``projection.digest_sum``): the same sum."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.scoring.domain.projection import Change, _sha256, digest_sum, id_hash

digests = st.lists(st.binary(min_size=32, max_size=32), max_size=300)


def plain_sum(values: list[bytes]) -> int:
    return sum(int.from_bytes(d, "big") for d in values)


@given(digests)
def test_the_digests_sum_as_plain_numbers_would(values: list[bytes]) -> None:
    assert digest_sum(values) == plain_sum(values)


def test_sums_at_the_edges() -> None:
    top, zero = b"\xff" * 32, bytes(32)
    for values in ([], [zero], [top], [zero] * 5000, [top] * 5000, [top, zero] * 2500, [zero, top] * 2500):
        assert digest_sum(values) == plain_sum(values)
    assert digest_sum(iter([top] * 3)) == 3 * (2**256 - 1)  # any iterable of digests


def test_the_hash_in_use_gives_hashlibs_digests() -> None:
    for _ in range(200):
        data = uuid.uuid4().bytes
        assert _sha256(data).digest() == hashlib.sha256(data).digest()


def test_an_epochs_sum_is_the_sum_of_id_hash_over_many_events() -> None:
    ids = [uuid.uuid4() for _ in range(20_000)]
    change = Change()
    change.tallied["2025-03"] = (ids, [datetime(2025, 3, 1, tzinfo=UTC)] * len(ids))
    change.settle_hashes()
    assert change.epochs["2025-03"].events == len(ids)
    assert change.epochs["2025-03"].id_hash_sum == sum(map(id_hash, ids)) % 2**256
