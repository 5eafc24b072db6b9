-- Scoring's projection. Each case's facts, and per unit and month the counts derived from them.
CREATE TABLE case_facts (
    case_id    text PRIMARY KEY,
    unit_id    text        NOT NULL,
    category   text        NOT NULL,
    filed_at   timestamptz NOT NULL,
    version    integer     NOT NULL
);

CREATE TABLE unit_month (
    unit_id text    NOT NULL,
    month   text    NOT NULL,  -- YYYY-MM in China time
    filed   integer NOT NULL DEFAULT 0,
    PRIMARY KEY (unit_id, month)
);
