"""Figures a benchmark leaves in ``.rectify/bench/NAME.json`` for ``rectify bench``'s table: each figure with its
goal, whether it was met, and the bare baseline measured in the same run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from services.cli.local import REPO

RESULTS = REPO / ".rectify" / "bench"


@dataclass
class Figure:
    """One line of the report: a value, its goal, and the bare baseline measured in the same run."""

    name: str
    value: float
    unit: str
    goal: str = ""
    ok: bool | None = None
    baseline: float | None = None
    baseline_name: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline and math.isfinite(self.value) else None


def save(figures: list[Figure], details: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"figures": [asdict(f) | {"ratio": f.ratio} for f in figures], "details": details}
    path.write_text(json.dumps(body, indent=2, default=str))


def record(name: str, figures: list[Figure], details: dict[str, Any] | None = None) -> Path:
    """Write this run's figures of benchmark ``name`` where ``rectify bench`` looks for them."""
    path = RESULTS / f"{name}.json"
    save(figures, details or {}, path)
    return path
