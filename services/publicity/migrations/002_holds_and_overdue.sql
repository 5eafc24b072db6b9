-- PublicCaseChanged v2: who held the case up, overdue, reopenings and escalations.
ALTER TABLE cases
    ADD COLUMN overdue      boolean NOT NULL DEFAULT false,
    ADD COLUMN reopen_count integer NOT NULL DEFAULT 0,
    ADD COLUMN escalations  integer NOT NULL DEFAULT 0,
    ADD COLUMN holds        jsonb   NOT NULL DEFAULT '[]'::jsonb;
CREATE INDEX cases_overdue ON cases (responsible_unit_id) WHERE overdue;
