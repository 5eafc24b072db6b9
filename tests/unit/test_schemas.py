from pathlib import Path

import jsonschema
import orjson

from services.common import schemas
from services.common.contracts import MESSAGE_CLASSES, encode_event
from tests.unit.test_contracts import filed_envelope

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_checked_in_schemas_are_current() -> None:
    stale = schemas.stale(DOCS)
    assert not stale, f"regenerate with `rectify schemas`: {stale}"


def test_every_message_has_a_schema_and_a_topic() -> None:
    generated = schemas.json_schemas()
    assert set(generated) == {schemas.schema_name(m) for m in MESSAGE_CLASSES}
    for schema in generated.values():
        assert schema["x-topic"].startswith("rectify.")


def test_a_real_message_validates_against_its_schema() -> None:
    schema = schemas.json_schemas()["CaseFiled.v1"]
    jsonschema.validate(orjson.loads(encode_event(filed_envelope())), schema)


def test_asyncapi_lists_every_topic() -> None:
    doc = schemas.asyncapi()
    addresses = {ch["address"] for ch in doc["channels"].values()}
    from services.common.topics import ALL_TOPICS

    assert addresses == {t.name for t in ALL_TOPICS}
