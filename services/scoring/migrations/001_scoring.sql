-- Scoring's projection of the case events (docs/scoring.md). Every table is a function of the log:
-- `rectify rebuild scoring` replays the topic into a shadow schema and compares content hashes.

-- What scoring keeps of each case, as of the latest event that changed it (state: the compact JSON of
-- services/scoring/domain/facts.py, stored_facts). previous_version guards against two writers on one case.
-- Updated on most events: room is left in each page so that updates stay on the page (HOT).
CREATE TABLE case_facts (
    case_id          text PRIMARY KEY,
    version          integer     NOT NULL,
    previous_version integer     NOT NULL,
    recorded_at      timestamptz NOT NULL,  -- the latest recorded_at applied
    unit_id          text,                  -- the unit charged with the case now (null: unassigned or withdrawn)
    month            text,                  -- the month the case counts in for that unit
    state            bytea       NOT NULL
) WITH (fillfactor = 80);

-- Per unit and month (YYYY-MM, China time), the counters the rates are made of. Quarters and years are the
-- sums of their months: see the unit_period view.
CREATE TABLE unit_month (
    unit_id             text    NOT NULL,
    month               text    NOT NULL,
    complained          integer NOT NULL DEFAULT 0,
    assigned            integer NOT NULL DEFAULT 0,
    acknowledged        integer NOT NULL DEFAULT 0,
    ack_on_time         integer NOT NULL DEFAULT 0,
    closed              integer NOT NULL DEFAULT 0,
    closed_on_time      integer NOT NULL DEFAULT 0,
    open_overdue        integer NOT NULL DEFAULT 0,
    inspected           integer NOT NULL DEFAULT 0,
    first_pass          integer NOT NULL DEFAULT 0,
    resolved            integer NOT NULL DEFAULT 0,
    rated               integer NOT NULL DEFAULT 0,
    satisfied           integer NOT NULL DEFAULT 0,
    basically_satisfied integer NOT NULL DEFAULT 0,
    redo                integer NOT NULL DEFAULT 0,
    reopened            integer NOT NULL DEFAULT 0,
    exposed             integer NOT NULL DEFAULT 0,
    overdue             integer NOT NULL DEFAULT 0,
    transferred_out     integer NOT NULL DEFAULT 0,
    PRIMARY KEY (unit_id, month)
);

-- The spans the medians are taken over: per case, from assignment to acknowledgment (response) and to the
-- submission of the accepted rectification (rectification). Working days are counted at ranking time, with
-- the calendar the ranking records.
CREATE TABLE unit_durations (
    month      text        NOT NULL,
    unit_id    text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('response', 'rectification')),
    case_id    text        NOT NULL,
    started_at timestamptz NOT NULL,
    ended_at   timestamptz NOT NULL,
    PRIMARY KEY (month, unit_id, kind, case_id)
);

-- The events applied, per epoch (the first month whose cutoff they were recorded before): how many, the sum of
-- sha256(event id) mod 2^256, and the latest recorded_at. A ranking's position is the sum over its epochs.
CREATE TABLE log_epochs (
    epoch            text PRIMARY KEY,
    events           bigint      NOT NULL,
    id_hash_sum      numeric     NOT NULL,
    last_recorded_at timestamptz NOT NULL
);

-- Every ranking published (the RankingPublished payload, also sent through the outbox).
CREATE TABLE published_rankings (
    ranking_id      uuid PRIMARY KEY,
    period          text        NOT NULL,
    tier            text        NOT NULL,
    formula_version text        NOT NULL,
    input_hash      text        NOT NULL,
    result_hash     text        NOT NULL,
    payload         jsonb       NOT NULL,
    published_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (period, tier, formula_version)
);

CREATE VIEW unit_period AS
SELECT unit_id, 'month' AS kind, month AS period, complained, assigned, acknowledged, ack_on_time, closed,
       closed_on_time, open_overdue, inspected, first_pass, resolved, rated, satisfied, basically_satisfied, redo,
       reopened, exposed, overdue, transferred_out
FROM unit_month
UNION ALL
SELECT unit_id, p.kind, p.period, sum(complained), sum(assigned), sum(acknowledged), sum(ack_on_time), sum(closed),
       sum(closed_on_time), sum(open_overdue), sum(inspected), sum(first_pass), sum(resolved), sum(rated),
       sum(satisfied), sum(basically_satisfied), sum(redo), sum(reopened), sum(exposed), sum(overdue),
       sum(transferred_out)
FROM unit_month
CROSS JOIN LATERAL (VALUES
    ('quarter', substr(month, 1, 4) || '-Q' || ((substr(month, 6, 2)::int + 2) / 3)::text),
    ('year', substr(month, 1, 4))
) AS p(kind, period)
GROUP BY unit_id, p.kind, p.period;
