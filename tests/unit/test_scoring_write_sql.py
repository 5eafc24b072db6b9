"""write_projection (scoring's migration 003) spells out what Python defines: the counters in their order and the
id hashes' modulus. A counter added, renamed or moved in figures.py must be made there too."""

import re
from pathlib import Path

from services.scoring.domain.figures import COUNTERS
from services.scoring.domain.projection import ID_HASH_MODULUS

SQL = (Path(__file__).parents[2] / "services" / "scoring" / "migrations" / "003_write_projection.sql").read_text()


def test_the_counters_are_the_domains_in_its_order() -> None:
    parameters = re.findall(r"^\s+(\w+)_ integer\[\],", SQL, re.MULTILINE)
    assert parameters == list(COUNTERS)
    columns = re.search(r"INSERT INTO unit_month AS t \(unit_id, month, ([^)]*)\)", SQL)
    assert columns is not None
    assert [c.strip() for c in columns.group(1).split(",")] == list(COUNTERS)
    unnested = re.search(r"unnest\(units_, months_, ([^)]*)\)", SQL)
    assert unnested is not None
    assert [c.strip() for c in unnested.group(1).split(",")] == [f"{c}_" for c in COUNTERS]
    for counter in COUNTERS:
        assert f"{counter} = t.{counter} + EXCLUDED.{counter}" in " ".join(SQL.split())


def test_the_id_hash_modulus_is_the_domains() -> None:
    assert re.findall(r"\b\d{60,}\b", SQL) == [str(ID_HASH_MODULUS)]
