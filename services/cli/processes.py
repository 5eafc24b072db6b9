"""Every process the system runs, by name. docker-compose.yml and ``rectify up`` start these."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Process:
    name: str
    target: str  # "module:function"
    http: bool  # serves HTTP on HTTP_PORT
    schema: str
    description: str

    def load(self) -> Callable[[], None]:
        module, func = self.target.split(":")
        fn: Callable[[], None] = getattr(importlib.import_module(module), func)
        return fn


PROCESSES: dict[str, Process] = {
    p.name: p
    for p in (
        Process("intake-api", "services.intake.wiring:main_http", True, "intake", "HTTP API for agencies"),
        Process(
            "intake-worker", "services.intake.wiring:main_worker", False, "intake", "submission outcomes, outbox relay"
        ),
        Process(
            "rectification-worker",
            "services.rectification.wiring:main",
            False,
            "rectification",
            "decides commands, event store, outbox relay",
        ),
        Process("scoring-worker", "services.scoring.wiring:main_worker", False, "scoring", "scoring projection"),
        Process("publicity-worker", "services.publicity.wiring:main_worker", False, "publicity", "public projection"),
        Process("publicity-web", "services.publicity.wiring:main_http", True, "publicity", "public page and JSON API"),
    )
}
