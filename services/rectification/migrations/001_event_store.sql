-- The case event store: one stream per case, append-only, optimistic concurrency on stream_version.
CREATE TABLE events (
    global_position bigserial   PRIMARY KEY,
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL,
    stream_version  integer     NOT NULL CHECK (stream_version >= 1),
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    envelope        jsonb       NOT NULL,
    UNIQUE (stream_id, stream_version)
);
