-- The publicity projection: public facts only (see PublicCaseChanged). No personal data column exists here.
CREATE TABLE cases (
    case_id             text PRIMARY KEY,
    status              text        NOT NULL,
    category            text        NOT NULL,
    unit_id             text        NOT NULL,
    responsible_unit_id text,
    filed_at            timestamptz NOT NULL,
    deadline            timestamptz,
    redo_count          integer     NOT NULL DEFAULT 0,
    problem_summary     text,
    result_summary      text,
    exposed             boolean     NOT NULL DEFAULT false,
    version             integer     NOT NULL,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX cases_filed_at ON cases (filed_at DESC, case_id);
CREATE INDEX cases_unit ON cases (unit_id, filed_at DESC);
CREATE INDEX cases_category ON cases (category, filed_at DESC);
CREATE INDEX cases_status ON cases (status, filed_at DESC);

CREATE TABLE timeline (
    case_id text        NOT NULL,
    version integer     NOT NULL,
    step    text        NOT NULL,
    at      timestamptz NOT NULL,
    PRIMARY KEY (case_id, version)
);
