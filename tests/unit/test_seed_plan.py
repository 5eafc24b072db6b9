"""The plan `rectify seed` replays: what happened by a moment, in waves a merge never straddles wrongly."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.cli.seed import plan_month
from services.common.contracts import FileComplaint, MergeCase

UNTIL = datetime(2026, 3, 20, 12, tzinfo=UTC)


def test_the_plan_stops_at_now_and_is_the_same_every_time() -> None:
    plan = plan_month(3, 80, 30, UNTIL)
    assert plan.start == date(2026, 2, 18)
    assert plan.commands == plan_month(3, 80, 30, UNTIL).commands
    assert all(c.issued_at <= UNTIL for c in plan.commands)
    assert len(plan.case_ids) == 80  # every case was filed before the day of UNTIL
    assert sum(isinstance(c.payload, FileComplaint) for c in plan.commands) == 80
    later = plan_month(3, 80, 30, datetime(2026, 4, 30, tzinfo=UTC), start=plan.start)
    assert later.commands[: len(plan.commands)] == plan.commands  # seeding later continues the same stories
    assert len(later.commands) > len(plan.commands)
    assert plan.busiest_month in ("2026-02", "2026-03")


def test_waves_keep_the_order_and_file_a_survivor_before_its_duplicate_is_merged() -> None:
    plan = plan_month(3, 80, 30, datetime(2026, 4, 30, tzinfo=UTC), start=date(2026, 2, 18))
    waves = plan.waves()
    assert [c for wave in waves for c in wave] == plan.commands
    merges = [c for c in plan.commands if isinstance(c.payload, MergeCase)]
    assert merges and len(waves) > 1
    for wave in waves:
        seen: set[str] = set()
        for command in wave:
            if isinstance(command.payload, MergeCase):
                assert command.payload.into_case_id not in seen
            seen.add(command.case_id)
