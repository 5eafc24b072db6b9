-- The public pages (issue 6): statistics cells, publication and exposure times, rankings, and a change counter.
-- Still public facts only: every column here comes from PublicCaseChanged or RankingPublished.

ALTER TABLE cases
    ADD COLUMN published_at timestamptz,  -- the latest publication (向社会公布), from the timeline
    ADD COLUMN exposed_at   timestamptz;  -- the first exposure (曝光), from the timeline
UPDATE cases c SET
    published_at = (SELECT max(t.at) FROM timeline t WHERE t.case_id = c.case_id AND t.step = 'published'),
    exposed_at   = (SELECT min(t.at) FROM timeline t WHERE t.case_id = c.case_id AND t.step = 'exposed');
CREATE INDEX cases_published ON cases (published_at DESC, case_id) WHERE published_at IS NOT NULL;
CREATE INDEX cases_exposed ON cases (exposed_at DESC, case_id) WHERE exposed;
DROP INDEX cases_overdue;
CREATE INDEX cases_overdue ON cases (deadline, case_id) WHERE overdue;
CREATE INDEX cases_overdue_unit ON cases (responsible_unit_id, deadline, case_id) WHERE overdue;

-- How many cases sit in each cell: filing month (China time), unit complained about, category, status, flags.
-- Kept in the same transaction as the cases, so totals and charts cost a few hundred rows, not a scan.
CREATE TABLE stats_cells (
    month    text    NOT NULL,
    unit_id  text    NOT NULL,
    category text    NOT NULL,
    status   text    NOT NULL,
    overdue  boolean NOT NULL,
    exposed  boolean NOT NULL,
    n        integer NOT NULL,
    PRIMARY KEY (month, unit_id, category, status, overdue, exposed)
);
INSERT INTO stats_cells
SELECT to_char(filed_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM'), unit_id, category, status, overdue, exposed, count(*)
FROM cases GROUP BY 1, 2, 3, 4, 5, 6;

-- Every ranking scoring published (RankingPublished), as published; the newest per period and tier is shown.
CREATE TABLE rankings (
    event_id        uuid PRIMARY KEY,
    period          text        NOT NULL,
    tier            text        NOT NULL,
    formula_version text        NOT NULL,
    stream_version  integer     NOT NULL,
    recorded_at     timestamptz NOT NULL,
    result_hash     text        NOT NULL,
    document        jsonb       NOT NULL
);
CREATE INDEX rankings_latest ON rankings (period DESC, tier, stream_version DESC);

-- One row: how many batches changed the projection, and when the last did (ETag and Last-Modified).
CREATE TABLE watermark (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    changes    bigint      NOT NULL,
    changed_at timestamptz NOT NULL
);
INSERT INTO watermark VALUES (true, 0, now());
