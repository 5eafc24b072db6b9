"""The time-limit policy: the shipped file, deadlines by tier and category, extensions, and bad files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.common.contracts import Severity
from services.rectification.domain.calendar import END_OF_DAY, SHANGHAI, ConfigError, load_calendar
from services.rectification.domain.time_limits import (
    DEFAULT_TIME_LIMITS_PATH,
    ExtensionRefused,
    TimeLimit,
    load_time_limits,
)

CALENDAR = load_calendar()
POLICY = load_time_limits()
CATEGORIES = {
    "inaction",
    "slow_action",
    "wrongful_action",
    "extortion",
    "obstruction",
    "buck_passing",
    "land_demolition",
    "subcontracting",
    "business_environment",
    "service_window",
    "integrity",
}


def shanghai(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def end_of(day: date) -> datetime:
    return datetime.combine(day, END_OF_DAY, tzinfo=SHANGHAI)


def test_shipped_policy() -> None:
    assert POLICY.version == "tl-1"
    assert POLICY.acknowledgment == TimeLimit(working_days=1)
    assert POLICY.tiers == {
        Severity.URGENT: TimeLimit(hours=2),
        Severity.UTILITIES: TimeLimit(hours=24),
        Severity.GENERAL: TimeLimit(working_days=7),
        Severity.COMPLEX: TimeLimit(working_days=15),
    }
    assert set(POLICY.categories) == CATEGORIES
    assert (POLICY.extensions.max_extensions, POLICY.extensions.max_extension_days) == (2, 7)
    assert POLICY.follow_up_review_days == 90


def test_policy_is_immutable() -> None:
    with pytest.raises(ValidationError):
        POLICY.version = "tl-2"  # type: ignore[misc]


def test_general_case_across_national_day() -> None:
    deadlines = POLICY.deadlines(shanghai(2026, 9, 30, 10, 0), "inaction", "general", CALENDAR)
    assert deadlines.ack_due == end_of(date(2026, 10, 8))
    assert deadlines.rectify_due == end_of(date(2026, 10, 15))
    assert deadlines.rectify_limit.describe() == "7 working days"
    assert deadlines.policy_version == "tl-1"
    assert deadlines.calendar_version == CALENDAR.version


def test_complex_case_across_labour_day_and_its_make_up_saturday() -> None:
    deadlines = POLICY.deadlines(shanghai(2026, 4, 30, 9, 0), "buck_passing", Severity.COMPLEX, CALENDAR)
    assert deadlines.ack_due == end_of(date(2026, 5, 6))
    assert deadlines.rectify_due == end_of(date(2026, 5, 25))


def test_urgent_case_is_acknowledged_within_its_two_hours() -> None:
    assigned = shanghai(2026, 10, 3, 23, 0)
    deadlines = POLICY.deadlines(assigned, "extortion", "urgent", CALENDAR)
    assert deadlines.rectify_due == assigned + timedelta(hours=2)
    assert deadlines.ack_due == deadlines.rectify_due


def test_utilities_case_runs_24_hours_through_a_holiday() -> None:
    assigned = datetime(2026, 9, 30, 10, 0, tzinfo=UTC)
    deadlines = POLICY.deadlines(assigned, "inaction", "utilities", CALENDAR)
    assert deadlines.rectify_due == shanghai(2026, 10, 1, 18, 0)
    assert deadlines.ack_due == deadlines.rectify_due


def test_category_overrides() -> None:
    assigned = shanghai(2026, 3, 2, 9, 0)
    assert POLICY.deadlines(assigned, "land_demolition", "general", CALENDAR).rectify_due == end_of(date(2026, 3, 23))
    assert POLICY.deadlines(assigned, "land_demolition", "urgent", CALENDAR).rectify_limit == TimeLimit(hours=2)
    assert POLICY.deadlines(assigned, "service_window", "general", CALENDAR).rectify_due == end_of(date(2026, 3, 9))
    assert POLICY.deadlines(assigned, "integrity", "general", CALENDAR).rectify_due == end_of(date(2026, 3, 11))


def test_unknown_category_or_severity_is_refused() -> None:
    assigned = shanghai(2026, 3, 2, 9, 0)
    with pytest.raises(ValueError, match="'littering'"):
        POLICY.deadlines(assigned, "littering", "general", CALENDAR)
    with pytest.raises(ValueError, match="'critical'"):
        POLICY.deadlines(assigned, "inaction", "critical", CALENDAR)


def test_extensions_within_policy() -> None:
    due = end_of(date(2026, 9, 30))
    assert POLICY.extended_due(due, 7, 0, CALENDAR) == end_of(date(2026, 10, 15))
    assert POLICY.extended_due(due, 1, 1, CALENDAR) == end_of(date(2026, 10, 8))
    with pytest.raises(ExtensionRefused, match="at most 2"):
        POLICY.extended_due(due, 1, 2, CALENDAR)
    with pytest.raises(ExtensionRefused, match="1 to 7"):
        POLICY.extended_due(due, 8, 0, CALENDAR)
    with pytest.raises(ExtensionRefused, match="1 to 7"):
        POLICY.extended_due(due, 0, 0, CALENDAR)


def test_follow_up_review_is_90_calendar_days_after_closing() -> None:
    assert POLICY.follow_up_due(datetime(2026, 6, 30, 16, 0, tzinfo=UTC)) == shanghai(2026, 9, 29, 0, 0)


def write_variant(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = yaml.safe_load(DEFAULT_TIME_LIMITS_PATH.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "time_limits.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["tiers"]["general"].update(working_days=0), "tiers.general.working_days"),
        (lambda d: d["tiers"]["urgent"].update(working_days=1), "tiers.urgent"),
        (lambda d: d["tiers"].pop("complex"), "tiers"),
        (lambda d: d["tiers"].update(urgnt=d["tiers"].pop("urgent")), "tiers.urgnt.[key]"),
        (lambda d: d["extensions"].update(max_extension=3), "extensions.max_extension"),
        (lambda d: d["extensions"].pop("max_extension_days"), "extensions.max_extension_days"),
        (
            lambda d: d["categories"]["land_demolition"]["tiers"].update(general={"days": 3}),
            "categories.land_demolition.tiers.general.days",
        ),
        (lambda d: d.pop("version"), "version"),
        (lambda d: d.update(follow_up_review_days="ninety"), "follow_up_review_days"),
        (lambda d: d.update(categories={}), "categories"),
    ],
)
def test_bad_policy_file_names_the_field(tmp_path: Path, change: Callable[[dict[str, Any]], None], field: str) -> None:
    path = write_variant(tmp_path, change)
    with pytest.raises(ConfigError) as raised:
        load_time_limits(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ")
    assert field in [problem.split(": ")[0] for problem in message.removeprefix(f"{path}: ").split("; ")]


def test_unreadable_policy_files(tmp_path: Path) -> None:
    not_yaml = tmp_path / "broken.yaml"
    not_yaml.write_text("version: [tl-1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_time_limits(not_yaml)
    a_list = tmp_path / "list.yaml"
    a_list.write_text("- tl-1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="mapping"):
        load_time_limits(a_list)
