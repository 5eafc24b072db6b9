"""Every Kafka topic the system uses: name, partitions, retention and the message key.

Topics are created explicitly at start-up (``ensure_topics``); nothing relies on auto-creation.
Case topics are keyed by case id so the events of one case stay in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    key: str  # what the message key is
    description: str
    cleanup_policy: str = "delete"
    retention_ms: int = -1  # the durable record is PostgreSQL; the topics keep everything by default


COMMANDS = TopicSpec(
    "rectify.intake.commands.v1",
    4,
    "case id",
    "Commands accepted by intake (one per submission), for rectification to decide.",
)
CASE_EVENTS = TopicSpec(
    "rectify.case.events.v1",
    4,
    "case id",
    "Every event of every case, in stream order per case. Internal: carries unapproved free text.",
)
OUTCOMES = TopicSpec(
    "rectify.submission.outcomes.v1",
    4,
    "case id",
    "Whether rectification applied or refused each submission, for intake's submission status.",
)
PUBLIC_CASES = TopicSpec(
    "rectify.public.cases.v1",
    4,
    "case id",
    "Allow-listed public facts about cases; the only topic the publicity service reads.",
)
DEAD_LETTERS = TopicSpec(
    "rectify.deadletter.v1",
    1,
    "source topic",
    "Messages a consumer could not process, with the reason in headers.",
)
SUBMISSIONS_IN = TopicSpec(
    "rectify.intake.submissions.v1",
    4,
    "any (the agency's idempotency key is a good choice)",
    "Complaints an agency publishes directly: the body of POST /v1/complaints, the API key and"
    " Idempotency-Key in headers (docs/intake.md). Carries personal data, so it is kept 7 days only.",
    retention_ms=7 * 24 * 3600 * 1000,
)
RANKINGS = TopicSpec(
    "rectify.rankings.v1",
    1,
    "ranking-<period>-<tier>",
    "Unit rankings as published by scoring (RankingPublished), with their position in the case log and hashes.",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    COMMANDS,
    CASE_EVENTS,
    OUTCOMES,
    PUBLIC_CASES,
    DEAD_LETTERS,
    SUBMISSIONS_IN,
    RANKINGS,
)


def relay_marker(schema: str) -> TopicSpec:
    """The topic that says a service's outbox is on this broker: nobody produces to it or reads it.

    The service's relay creates it after marking its outbox for publishing again on a broker that lacked it (the
    local in-memory broker restarted empty, or a new cluster). Not in ``ALL_TOPICS``: it carries no messages.
    """
    return TopicSpec(f"rectify.relay.{schema}.marker", 1, "none", f"{schema}'s outbox is on this broker (empty).")
