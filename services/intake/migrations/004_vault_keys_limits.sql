-- Complainant data is encrypted with a key per complainant (AES-256-GCM); the key is stored wrapped
-- by the intake master key. Erasure deletes the key: every copy of the data becomes unreadable.
ALTER TABLE complainants
    DROP COLUMN name,
    DROP COLUMN phone,
    DROP COLUMN email,
    ADD COLUMN sealed bytea NOT NULL,
    ADD COLUMN erased_at timestamptz;

CREATE TABLE complainant_keys (
    complainant_ref text PRIMARY KEY REFERENCES complainants ON DELETE CASCADE,
    wrapped_key     bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Requests per minute an agency may make (a token bucket per intake process).
ALTER TABLE agencies ADD COLUMN rate_per_minute integer NOT NULL DEFAULT 600 CHECK (rate_per_minute >= 0);
