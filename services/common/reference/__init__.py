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
