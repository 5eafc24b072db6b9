-- Projections kept by rectification in the same transaction as each append, rebuildable from the events.

-- Deadlines now running and not yet recorded as breached: what the deadline watcher scans.
CREATE TABLE open_deadlines (
    case_id text        NOT NULL,
    which   text        NOT NULL,
    due_at  timestamptz NOT NULL,
    PRIMARY KEY (case_id, which)
);
CREATE INDEX open_deadlines_due ON open_deadlines (due_at);

-- Who held it up (倒查责任): every spell a holder had the case. An open spell has no end.
CREATE TABLE case_holds (
    case_id      text        NOT NULL,
    seq          integer     NOT NULL,
    step         text        NOT NULL,
    holder       text        NOT NULL,
    started_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    working_days double precision,
    PRIMARY KEY (case_id, seq)
);
CREATE INDEX case_holds_open ON case_holds (holder) WHERE ended_at IS NULL;
