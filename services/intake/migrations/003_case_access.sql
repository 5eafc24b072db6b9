-- Which agency may see and act on which case: the filer, the unit responsible now, and the supervisors.
-- Filled at filing, then from rectification's outcomes (SubmissionApplied v2), in the same transaction as
-- the submission status, so an agency that sees "applied" can act on what that command made possible.
CREATE TABLE case_access (
    case_id             text PRIMARY KEY,
    filed_by            text        NOT NULL REFERENCES agencies,
    status              text        NOT NULL,
    responsible_unit_id text,
    case_version        integer     NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_access_unit ON case_access (responsible_unit_id);
CREATE INDEX case_access_filer ON case_access (filed_by);
