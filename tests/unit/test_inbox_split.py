"""``Inbox.prepare``: a batch with nothing oversized or poison is decoded by C-level maps, any other batch message by
message; either way every message gets the verdict the plain per-message definition gives it, in order."""

from __future__ import annotations

import random

import pytest

from services.common.contracts import ContractError
from services.common.inbox import Decoded, Inbox, Record

MAX = 64


def decode(value: bytes) -> tuple[str, int]:
    if value.startswith(b"bad"):
        raise ContractError("invalid_payload", f"refused {value[:10]!r}")
    if value.startswith(b"boom"):
        raise RuntimeError("not the message's fault")
    return ("ok", len(value))


def by_definition(records: list[Record]) -> tuple[list[tuple[Record, object]], list[tuple[Record, str, str]]]:
    good: list[tuple[Record, object]] = []
    poison: list[tuple[Record, str, str]] = []
    for r in records:
        if len(r.value) > MAX:
            poison.append((r, "oversized", f"{len(r.value)} bytes > {MAX}"))
            continue
        try:
            good.append((r, decode(r.value)))
        except ContractError as exc:
            poison.append((r, exc.code, exc.reason))
    return good, poison


def inbox() -> Inbox[tuple[str, int]]:
    async def handle(conn: object, batch: object) -> None:
        return None

    return Inbox(
        None,  # type: ignore[arg-type]  # prepare does no I/O
        service="test",
        decode=decode,
        message_id=lambda m: None,  # type: ignore[arg-type,return-value]
        handle=handle,  # type: ignore[arg-type]
        max_message_bytes=MAX,
    )


def record(offset: int, value: bytes) -> Record:
    return Record("t", offset % 3, offset, b"k", value)


@pytest.mark.parametrize("seed", range(40))
def test_prepare_gives_every_message_the_definitions_verdict(seed: int) -> None:
    rng = random.Random(seed)
    kinds = ["good"] * rng.choice([1, 5, 50, 1000]) + ["bad", "oversized"]
    records = []
    for offset in range(rng.randrange(0, 60)):
        kind = rng.choice(kinds)
        value = b"x" * rng.randrange(0, MAX + 1)
        if kind == "bad":
            value = b"bad" + value[3:]
        elif kind == "oversized":
            value = b"y" * rng.randrange(MAX + 1, 2 * MAX)
        records.append(record(offset, value))
    prepared = inbox().prepare(records)
    good, poison = by_definition(records)
    assert [(d.record, d.message) for d in prepared.good] == good
    assert all(type(d) is Decoded for d in prepared.good)
    assert all(d.record is r for d, (r, _) in zip(prepared.good, good, strict=True))
    assert prepared.poison == poison
    assert prepared.records is records


def test_a_message_at_the_size_limit_is_decoded_one_above_is_oversized() -> None:
    records = [record(0, b"x" * MAX), record(1, b"x" * (MAX + 1))]
    prepared = inbox().prepare(records)
    assert [d.message for d in prepared.good] == [("ok", MAX)]
    assert prepared.poison == [(records[1], "oversized", f"{MAX + 1} bytes > {MAX}")]


@pytest.mark.parametrize("before", [b"x", b"bad", b"y" * (MAX + 1)])
def test_an_error_that_is_not_the_messages_fault_propagates_either_way(before: bytes) -> None:
    with pytest.raises(RuntimeError):
        inbox().prepare([record(0, before), record(1, b"boom")])
