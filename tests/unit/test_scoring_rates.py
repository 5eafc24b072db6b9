"""Every rate on hand-computed fixtures: cases told through the real decider, figures worked out by hand.

Times are Asia/Shanghai in November 2026 (no public holidays): a case assigned Monday 2 November 10:00 must be
acknowledged by the end of Tuesday 3 November and rectified by the end of Wednesday 11 November.
A working day is 24 hours of a working day: 10:00 to 14:00 the same day is 4/24 = 0.1667.
"""

from services.common.contracts import DeadlineKind, Satisfaction
from services.scoring.domain.figures import COUNTERS
from tests.unit.test_scoring_stories import Story, nov, ranking_of, rate, row, tables_of

ACK, RECT = DeadlineKind.ACKNOWLEDGMENT, DeadlineKind.RECTIFICATION


def counts(ranking, unit: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {k: v for k, v in row(ranking, unit)["counts"].items() if v}


def test_a_unit_with_no_cases_is_listed_unranked_with_no_rates() -> None:
    ranking = ranking_of([Story(f"RC-{i}", "meiwan", nov(2, 9)).on_time() for i in range(5)])
    maping = row(ranking, "maping")
    assert maping["cases"] == 0 and maping["rank"] is None and not maping["eligible"]
    assert all(r == {"num": 0, "den": 0, "value": None} for r in maping["rates"].values())
    assert maping["composite"] is None and maping["median_response_days"] is None
    assert set(maping["counts"].values()) == {0}
    assert row(ranking, "meiwan")["rank"] == 1 and row(ranking, "meiwan")["composite"] == "100.0000"


def test_response_rate_is_acknowledged_on_time_over_assigned() -> None:
    on_time = Story("RC-1", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14))  # 4 h: 0.1667
    late = Story("RC-2", "meiwan", nov(2, 9)).assign(nov(2)).overdue(ACK).ack(nov(4, 9))  # 14+24+9 = 47 h
    never = Story("RC-3", "meiwan", nov(2, 9)).assign(nov(2)).overdue(ACK)
    ranking = ranking_of([on_time, late, never])
    assert rate(ranking, "meiwan", "response") == (1, 3, "0.3333")
    assert counts(ranking, "meiwan") == {
        "complained": 3,
        "assigned": 3,
        "acknowledged": 2,
        "ack_on_time": 1,
        "overdue": 2,
    }
    assert row(ranking, "meiwan")["median_response_days"] == "1.0625"  # (4/24 + 47/24) / 2 = 51/48


def test_all_cases_overdue() -> None:
    stories = [
        Story(f"RC-{i}", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(3)).overdue(RECT)
        for i in range(3)
    ]
    ranking = ranking_of(stories)
    assert rate(ranking, "meiwan", "on_time") == (0, 3, "0.0000")
    assert rate(ranking, "meiwan", "resolution") == (0, 3, "0.0000")
    assert rate(ranking, "meiwan", "response") == (3, 3, "1.0000")
    assert rate(ranking, "meiwan", "first_pass") == (0, 0, None)
    assert rate(ranking, "meiwan", "satisfaction") == (0, 0, None)
    assert counts(ranking, "meiwan")["open_overdue"] == 3 and counts(ranking, "meiwan")["overdue"] == 3
    assert row(ranking, "meiwan")["median_rectification_days"] is None


def test_on_time_rectification_is_on_time_over_closed_plus_open_past_the_deadline() -> None:
    closed_on_time = Story("RC-1", "meiwan", nov(2, 9)).on_time()  # submitted 4 Nov 11:00: 14+24+11 = 49 h
    closed_late = Story("RC-2", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(3)).overdue(RECT)
    closed_late.submit(nov(12)).accept(nov(12, 15)).publish(nov(12, 16))  # 14 h + 7 working days + 10 h = 192 h
    closed_late.rate(nov(13), Satisfaction.SATISFIED).close(nov(13, 11))
    open_late = Story("RC-3", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(3)).overdue(RECT)
    open_in_time = Story("RC-4", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(3))
    ranking = ranking_of([closed_on_time, closed_late, open_late, open_in_time])
    assert rate(ranking, "meiwan", "on_time") == (1, 3, "0.3333")
    c = counts(ranking, "meiwan")
    assert (c["closed"], c["closed_on_time"], c["open_overdue"]) == (2, 1, 1)
    assert row(ranking, "meiwan")["median_rectification_days"] == "5.0208"  # (49/24 + 8) / 2 = 241/48


def test_first_pass_acceptance_and_redo_count() -> None:
    first_time = Story("RC-1", "meiwan", nov(2, 9)).on_time()
    redone = Story("RC-2", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(3))
    redone.submit(nov(4, 11)).reject(nov(4, 15)).submit(nov(6, 11)).accept(nov(6, 15))
    waiting = Story("RC-3", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(3)).submit(nov(4, 11))
    ranking = ranking_of([first_time, redone, waiting])
    assert rate(ranking, "meiwan", "first_pass") == (1, 2, "0.5000")
    assert rate(ranking, "meiwan", "resolution") == (2, 3, "0.6667")
    assert counts(ranking, "meiwan")["redo"] == 1
    # resolved after 49 h (first time) and 14 + 24 × 3 + 11 = 97 h (the redo): median 73 h
    assert row(ranking, "meiwan")["median_rectification_days"] == "3.0417"


def test_satisfaction_is_satisfied_and_basically_satisfied_over_ratings() -> None:
    satisfied = Story("RC-1", "meiwan", nov(2, 9)).on_time(rating=Satisfaction.SATISFIED)
    basically = Story("RC-2", "meiwan", nov(2, 9)).on_time(rating=Satisfaction.BASICALLY_SATISFIED)
    unhappy = Story("RC-3", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(2, 15))
    unhappy.submit(nov(4, 11)).accept(nov(4, 15)).publish(nov(4, 16)).rate(nov(5, 9), Satisfaction.DISSATISFIED)
    ranking = ranking_of([satisfied, basically, unhappy])
    assert rate(ranking, "meiwan", "satisfaction") == (2, 3, "0.6667")
    c = counts(ranking, "meiwan")
    assert (c["rated"], c["satisfied"], c["basically_satisfied"], c["reopened"]) == (3, 1, 1, 1)
    assert rate(ranking, "meiwan", "resolution") == (2, 3, "0.6667")  # the reopened case is no longer resolved


def test_a_reopen_after_closure_takes_the_case_back_until_it_closes_again() -> None:
    story = Story("RC-1", "meiwan", nov(2, 9)).on_time().relapse(nov(5, 11))  # reopened 12 Nov 11:00
    reopened = ranking_of([story])
    assert rate(reopened, "meiwan", "on_time") == (0, 0, None)
    assert rate(reopened, "meiwan", "resolution") == (0, 1, "0.0000")
    assert counts(reopened, "meiwan")["reopened"] == 1 and "closed" not in counts(reopened, "meiwan")
    assert row(reopened, "meiwan")["median_rectification_days"] is None

    story.submit(nov(16)).accept(nov(16, 15)).publish(nov(16, 16))
    story.rate(nov(17, 9), Satisfaction.SATISFIED).close(nov(17))
    closed_again = ranking_of([story])
    assert rate(closed_again, "meiwan", "on_time") == (1, 1, "1.0000")  # due 7 working days after reopening
    assert rate(closed_again, "meiwan", "satisfaction") == (2, 2, "1.0000")  # both rounds' ratings count
    assert counts(closed_again, "meiwan")["reopened"] == 1
    # 2 Nov 10:00 to the accepted resubmission on 16 Nov 10:00: 14 h + 9 working days + 10 h = 10 working days
    assert row(closed_again, "meiwan")["median_rectification_days"] == "10.0000"


def test_a_transfer_mid_case_charges_the_new_unit_from_the_transfer_and_keeps_the_old_units_breach() -> None:
    story = Story("RC-1", "meiwan", nov(2, 9)).assign(nov(2)).overdue(ACK).transfer(nov(4), "renwan")
    story.ack(nov(4, 15)).plan(nov(4, 16)).submit(nov(6, 11)).accept(nov(6, 15)).publish(nov(6, 16))
    story.rate(nov(9, 9), Satisfaction.SATISFIED).close(nov(9))
    ranking = ranking_of([story])
    assert counts(ranking, "meiwan") == {"complained": 1, "overdue": 1, "transferred_out": 1}
    assert rate(ranking, "meiwan", "response") == (0, 0, None)
    renwan = counts(ranking, "renwan")
    assert (renwan["assigned"], renwan["ack_on_time"], renwan["closed_on_time"]) == (1, 1, 1)
    assert "overdue" not in renwan and "complained" not in renwan
    assert row(ranking, "renwan")["median_response_days"] == "0.2083"  # 5 h after the transfer
    assert row(ranking, "renwan")["median_rectification_days"] == "2.0417"  # 4 Nov 10:00 to 6 Nov 11:00


def test_a_transfer_across_months_leaves_the_old_month_to_the_old_unit() -> None:
    story = Story("RC-1", "meiwan", nov(30, 9, month=10)).assign(nov(30, 10, month=10)).transfer(nov(2), "renwan")
    october = ranking_of([story], period="2026-10")
    november = ranking_of([story], period="2026-11")
    assert counts(october, "meiwan") == {"complained": 1, "transferred_out": 1}
    assert counts(october, "renwan") == {} and counts(november, "renwan") == {"assigned": 1}
    assert counts(ranking_of([story], period="2026-Q4"), "renwan") == {"assigned": 1}


def test_an_extension_granted_before_the_deadline_moves_the_deadline() -> None:
    story = Story("RC-1", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(3))
    story.extend(nov(10), working_days=3)  # due 11 Nov becomes due 16 Nov
    story.submit(nov(13)).accept(nov(13, 15)).publish(nov(13, 16)).rate(nov(16, 9), Satisfaction.SATISFIED)
    story.close(nov(16))
    ranking = ranking_of([story])
    assert rate(ranking, "meiwan", "on_time") == (1, 1, "1.0000")
    assert "overdue" not in counts(ranking, "meiwan")
    assert [e.event_type for e in story.events].count("DeadlinePassed") == 0


def test_dismissed_and_merged_cases_count_nowhere() -> None:
    dismissed = Story("RC-1", "meiwan", nov(2, 9)).assign(nov(2)).overdue(ACK).dismiss(nov(4))
    ranking = ranking_of([dismissed])
    assert counts(ranking, "meiwan") == {}
    assert tables_of([dismissed]).counts == {}


def test_exposures_and_the_complained_count() -> None:
    exposed = Story("RC-1", "meiwan", nov(2, 9)).assign(nov(2)).ack(nov(2, 14)).plan(nov(2, 15))
    exposed.submit(nov(4, 11)).accept(nov(4, 15)).publish(nov(4, 16)).expose(nov(4, 17))
    elsewhere = Story("RC-2", "meiwan", nov(2, 9)).assign(nov(2), unit="renwan")
    ranking = ranking_of([exposed, elsewhere])
    assert counts(ranking, "meiwan")["exposed"] == 1 and counts(ranking, "meiwan")["complained"] == 2
    assert counts(ranking, "renwan") == {"assigned": 1}


def test_counters_are_the_documented_ones() -> None:
    assert COUNTERS == (
        "complained",
        "assigned",
        "acknowledged",
        "ack_on_time",
        "closed",
        "closed_on_time",
        "open_overdue",
        "inspected",
        "first_pass",
        "resolved",
        "rated",
        "satisfied",
        "basically_satisfied",
        "redo",
        "reopened",
        "exposed",
        "overdue",
        "transferred_out",
    )
