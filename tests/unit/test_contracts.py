import uuid
from datetime import UTC, datetime

import orjson
import pytest

from services.common import contracts as c
from services.common.contracts import ContractError

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def filed_envelope() -> c.EventEnvelope:
    payload = c.CaseFiled(
        channel=c.Channel.HOTLINE_12345,
        category="inaction",
        unit_id="meiwan",
        description="路灯坏了三个月无人修",
        severity=c.Severity.GENERAL,
        complainant_refs=("cp-1",),
        filed_at=NOW,
    )
    return c.wrap_event(
        payload,
        stream_id="RC-20261123-000001",
        stream_version=1,
        occurred_at=NOW,
        recorded_at=NOW,
        actor=c.Actor(agency_id="hotline-12345", role=c.Role.CHANNEL),
        correlation_id=uuid.uuid4(),
        causation_id=None,
    )


def test_event_round_trips_through_json() -> None:
    env = filed_envelope()
    assert c.decode_event(c.encode_event(env)) == env


def test_wire_form_names_type_and_version() -> None:
    wire = orjson.loads(c.encode_event(filed_envelope()))
    assert wire["event_type"] == "CaseFiled"
    assert wire["schema_version"] == 1
    assert wire["payload"]["unit_id"] == "meiwan"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda w: w.update(event_type="NoSuchEvent"), "unknown_type"),
        (lambda w: w.update(schema_version=99), "unknown_version"),
        (lambda w: w.update(schema_version="1"), "unknown_version"),
        (lambda w: w["payload"].update(unit_id="bad unit id!"), "invalid_payload"),
        (lambda w: w["payload"].update(surprise=1), "invalid_payload"),
        (lambda w: w.update(stream_version=0), "invalid_envelope"),
        (lambda w: w.update(payload=[1, 2]), "invalid_payload"),
    ],
)
def test_bad_messages_are_refused_with_a_code(mutate, code) -> None:  # type: ignore[no-untyped-def]
    wire = orjson.loads(c.encode_event(filed_envelope()))
    mutate(wire)
    with pytest.raises(ContractError) as err:
        c.decode_event(orjson.dumps(wire))
    assert err.value.code == code


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b"", b"\xff\xfe"])
def test_non_json_is_refused(raw: bytes) -> None:
    with pytest.raises(ContractError) as err:
        c.decode_event(raw)
    assert err.value.code == "bad_json"


def test_a_command_is_not_accepted_as_an_event() -> None:
    wire = orjson.loads(c.encode_event(filed_envelope()))
    wire["event_type"] = "FileComplaint"
    with pytest.raises(ContractError):
        c.decode_event(orjson.dumps(wire))


def test_old_versions_are_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 message is read as v2 through its upcaster, never by editing v1."""

    class CaseFiledV2(c.CaseEvent):
        message_type = "CaseFiled"
        schema_version = 2
        unit_id: str
        source: str

    monkeypatch.setitem(c.REGISTRY, ("CaseFiled", 2), CaseFiledV2)
    monkeypatch.setitem(c.LATEST, "CaseFiled", 2)
    monkeypatch.setitem(c.UPCASTERS, ("CaseFiled", 1), lambda d: {"unit_id": d["unit_id"], "source": d["channel"]})
    env = c.decode_event(c.encode_event(filed_envelope()))
    assert isinstance(env.payload, CaseFiledV2)
    assert env.payload.source == "hotline_12345"
    assert env.schema_version == 2


def test_every_message_is_frozen_and_registered_once() -> None:
    keys = [(m.message_type, m.schema_version) for m in c.MESSAGE_CLASSES]
    assert len(keys) == len(set(keys))
    for cls in c.MESSAGE_CLASSES:
        assert cls.model_config.get("frozen") is True
        assert cls.model_config.get("extra") == "forbid"


PERSONAL = ("name", "phone", "email", "contact", "id_card", "address", "complainant_name")


def test_no_contract_carries_personal_data() -> None:
    """Only an opaque complainant_ref crosses a service boundary; identity and contact stay in intake."""

    def fields_of(model: type) -> set[str]:
        out = set()
        for name, info in model.model_fields.items():  # type: ignore[attr-defined]
            out.add(name)
            ann = info.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                out |= fields_of(ann)
        return out

    for cls in c.MESSAGE_CLASSES:
        assert not {f for f in fields_of(cls) if f in PERSONAL}, cls.__name__


def test_trusted_fills_a_model_without_validation_but_only_with_every_field_in_order() -> None:
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    entry = c.trusted(c.TimelineEntry, step="filed", at=at)
    assert entry == c.TimelineEntry(step="filed", at=at)
    assert entry.model_dump_json() == c.TimelineEntry(step="filed", at=at).model_dump_json()
    with pytest.raises(TypeError, match="declaration order"):
        c.trusted(c.TimelineEntry, at=at, step="filed")  # msgspec would write the fields in this order
    with pytest.raises(TypeError, match="declaration order"):
        c.trusted(c.TimelineEntry, step="filed")  # a missing field would only fail when read


def test_encode_trusted_event_writes_the_bytes_of_the_models_it_skips() -> None:
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    envelope = {
        "event_id": uuid.UUID(int=7),
        "stream_id": "C-1",
        "stream_version": 3,
        "occurred_at": at,
        "recorded_at": datetime(2026, 3, 2, 1, 2, 3, 456789, tzinfo=UTC),
        "actor": c.Actor(agency_id="rectification", role=c.Role.SYSTEM),
        "correlation_id": uuid.UUID(int=8),
        "causation_id": None,
    }
    hold = c.trusted(c.PublicHold, step="triage", holder="supervisor", started_at=at, ended_at=at, working_days=0.25)
    applied = {
        "submission_id": uuid.UUID(int=9),
        "case_id": "C-1",
        "case_version": 3,
        "events": ("CaseAssigned",),
        "status": c.CaseStatus.ASSIGNED,
        "responsible_unit_id": "u-1",
    }
    public = c.PublicCaseChangedV2(
        case_id="C-1",
        status=c.CaseStatus.ASSIGNED,
        category="roads",
        unit_id="u-1",
        responsible_unit_id="u-1",
        filed_at=at,
        deadline=at,
        redo_count=0,
        problem_summary=None,
        result_summary=None,
        exposed=False,
        entry=c.TimelineEntry(step="assigned", at=at),
        overdue=False,
        reopen_count=0,
        escalations=0,
        holds=(hold,),
    )
    for payload_type, values in ((c.SubmissionAppliedV2, applied), (c.PublicCaseChangedV2, dict(public.__dict__))):
        model = c.wrap_event(c.trusted(payload_type, **values), **envelope, validate=False)  # type: ignore[arg-type]
        encoded = c.encode_trusted_event(payload_type, values, **envelope)  # type: ignore[arg-type]
        assert encoded == c.encode_event(model) == c.encode_event(c.decode_event(encoded))
    with pytest.raises(TypeError, match="declaration order"):
        c.encode_trusted_event(c.SubmissionAppliedV2, dict(reversed(applied.items())), **envelope)  # type: ignore[arg-type]
    # a nested part encoded once (the worker's public spells) writes the bytes of the model it stands for
    hold_values = dict(hold.__dict__)
    with_part = {**public.__dict__, "holds": (c.encode_trusted_part(c.PublicHold, hold_values),)}
    assert c.encode_trusted_event(c.PublicCaseChangedV2, with_part, **envelope) == c.encode_event(  # type: ignore[arg-type]
        c.wrap_event(public, **envelope, validate=False)  # type: ignore[arg-type]
    )
    with pytest.raises(TypeError, match="declaration order"):
        c.encode_trusted_part(c.PublicHold, dict(reversed(hold_values.items())))
