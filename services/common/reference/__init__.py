"""Reference data every service agrees on: the units and the complaint categories."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

HERE = Path(__file__).parent


class Named(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    zh: str
    en: str

    def name(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


class Unit(Named):
    tier: Literal["township", "department"]


class Reference(BaseModel):
    model_config = ConfigDict(frozen=True)
    units_version: str
    categories_version: str
    units: dict[str, Unit]
    categories: dict[str, Named]

    def unknown(self, category: object, unit_id: object) -> list[str]:
        """Which of a complaint's ``category`` and ``unit_id`` are not in this reference (a value that is not a string
        is left to the complaint's own validation). Every way in checks a complaint with this, beside the model's
        errors, so that one answer names every field wrong."""
        fields = []
        if isinstance(category, str) and category not in self.categories:
            fields.append("category")
        if isinstance(unit_id, str) and unit_id not in self.units:
            fields.append("unit_id")
        return fields


@lru_cache(maxsize=1)
def reference() -> Reference:
    units = yaml.safe_load((HERE / "units.yaml").read_text(encoding="utf-8"))
    cats = yaml.safe_load((HERE / "categories.yaml").read_text(encoding="utf-8"))
    return Reference(
        units_version=units["version"],
        categories_version=cats["version"],
        units={u["id"]: Unit(**u) for u in units["units"]},
        categories={c["id"]: Named(**c) for c in cats["categories"]},
    )
