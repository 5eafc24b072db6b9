"""The composite score's formula: versioned configuration (``config/formula.<version>.yaml``), not code.

A formula names the weight of each rate (summing to exactly 1), the deductions for exposures and the like,
the minimum number of cases a unit needs to be ranked, and the size of the commended and flagged lists.
Numbers are exact decimals; a bad file is refused with the field that is wrong.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator

from services.rectification.domain.calendar import ConfigError, VersionTag, read_yaml_config

CONFIG_DIR = Path(__file__).parent.parent / "config"
DEFAULT_FORMULA = "v1"

RATES: tuple[str, ...] = ("response", "on_time", "first_pass", "resolution", "satisfaction")
DEDUCTIBLE: tuple[str, ...] = ("exposed", "reopened", "redo", "overdue")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Weights(_Frozen):
    response: Decimal = Field(ge=0, le=1)
    on_time: Decimal = Field(ge=0, le=1)
    first_pass: Decimal = Field(ge=0, le=1)
    resolution: Decimal = Field(ge=0, le=1)
    satisfaction: Decimal = Field(ge=0, le=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> Weights:
        total = sum(self.of(name) for name in RATES)
        if total != 1:
            raise ValueError(f"the weights must add up to exactly 1, not {total}")
        return self

    def of(self, rate: str) -> Decimal:
        value: Decimal = getattr(self, rate)
        return value


class Deductions(_Frozen):
    """Points taken off per unit of share: ``points × count / cases`` (e.g. 20 × 1 exposure / 10 cases = 2)."""

    exposed: Decimal = Field(Decimal(0), ge=0, le=100)
    reopened: Decimal = Field(Decimal(0), ge=0, le=100)
    redo: Decimal = Field(Decimal(0), ge=0, le=100)
    overdue: Decimal = Field(Decimal(0), ge=0, le=100)

    def of(self, count: str) -> Decimal:
        value: Decimal = getattr(self, count)
        return value


class TopRule(_Frozen):
    """十佳: the first ``size`` ranked units, but never more than ``max_share`` of the ranked units."""

    size: PositiveInt = 10
    max_share: Decimal = Field(Decimal("0.5"), gt=0, le=1)


class BottomRule(_Frozen):
    """排名靠后: the last ``size`` ranked units, and any ranked unit scoring below ``below``; never a top unit."""

    size: NonNegativeInt = 3
    below: Decimal | None = Field(None, ge=0, le=100)


class Formula(_Frozen):
    version: VersionTag
    description: str = Field(min_length=1)
    min_cases: PositiveInt
    weights: Weights
    deductions: Deductions = Deductions()
    top_ten: TopRule = TopRule()
    bottom: BottomRule = BottomRule()


def formula_path(version: str, directory: Path = CONFIG_DIR) -> Path:
    return directory / f"formula.{version}.yaml"


def available_formulas(directory: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.name.removeprefix("formula.").removesuffix(".yaml") for p in directory.glob("formula.*.yaml"))


def load_formula(version: str = DEFAULT_FORMULA, directory: Path = CONFIG_DIR) -> Formula:
    path = formula_path(version, directory)
    if not path.exists():
        raise ConfigError(f"no formula {version!r}: the versions are {', '.join(available_formulas(directory))}")
    return read_formula(path, version)


def read_formula(path: Path, expected_version: str | None = None) -> Formula:
    formula = read_yaml_config(path, Formula)
    if expected_version is not None and formula.version != expected_version:
        raise ConfigError(f"{path}: version: the file says {formula.version!r}, its name {expected_version!r}")
    return formula
