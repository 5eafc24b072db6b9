"""`rectify import`'s row check: one report names every field wrong in a row, the reference checks included."""

from services.cli.import_cmd import Bad, Row, validate
from services.common.reference import reference

ROW = {
    "record_id": "H-1",
    "category": "inaction",
    "unit_id": "meiwan",
    "description": "窗口无人办理。",
    "location": "梅湾街道便民服务中心",
    "complainant_name": "张某某",
    "complainant_phone": "13800000000",
}


def fields(result: Row | list[Bad]) -> list[str]:
    assert isinstance(result, list), result
    return sorted(b.field for b in result)


def test_a_good_row_passes() -> None:
    assert isinstance(validate(1, dict(ROW)), Row)


def test_unknown_references_are_reported_beside_the_models_errors() -> None:
    row = {k: v for k, v in ROW.items() if k != "description"} | {"category": "gossip", "unit_id": "atlantis"}
    result = validate(7, row)
    assert fields(result) == ["category", "description", "unit_id"]
    assert isinstance(result, list) and {(b.line, b.record_id) for b in result} == {(7, "H-1")}


def test_unknown_references_alone() -> None:
    assert fields(validate(1, ROW | {"unit_id": "atlantis"})) == ["unit_id"]


def test_a_field_the_model_refuses_is_named_once() -> None:
    assert fields(validate(1, ROW | {"category": 5, "unit_id": "atlantis"})) == ["category", "unit_id"]


def test_the_reference_knows_only_strings_it_lists() -> None:
    ref = reference()
    assert ref.unknown("inaction", "meiwan") == []
    assert ref.unknown("gossip", "atlantis") == ["category", "unit_id"]
    assert ref.unknown(None, 5) == []  # not strings: the model's errors, not the reference's
