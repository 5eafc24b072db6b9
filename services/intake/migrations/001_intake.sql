CREATE TABLE agencies (
    agency_id  text PRIMARY KEY,
    name       text        NOT NULL,
    role       text        NOT NULL CHECK (role IN ('channel', 'supervisor', 'unit')),
    channel    text,
    unit_id    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'channel') = (channel IS NOT NULL)),
    CHECK ((role = 'unit') = (unit_id IS NOT NULL))
);

-- API keys are "rk_<key_id>_<secret>"; only a SHA-256 of the high-entropy secret is stored.
CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    agency_id   text        NOT NULL REFERENCES agencies,
    secret_hash bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);

-- The complainant vault: the only place personal data lives. Nothing else holds more than the ref.
CREATE TABLE complainants (
    complainant_ref text PRIMARY KEY,
    name            text        NOT NULL,
    phone           text,
    email           text,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE SEQUENCE case_number;

CREATE TABLE submissions (
    submission_id   uuid PRIMARY KEY,
    agency_id       text        NOT NULL REFERENCES agencies,
    idempotency_key text,
    request_hash    bytea       NOT NULL,
    command_type    text        NOT NULL,
    case_id         text        NOT NULL,
    status          text        NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'applied', 'refused')),
    code            text,
    reason          text,
    case_version    integer,
    received_at     timestamptz NOT NULL,
    decided_at      timestamptz,
    UNIQUE (agency_id, idempotency_key)
);
CREATE INDEX submissions_case ON submissions (case_id);
