-- Shared by every service, applied into the service's own schema.

-- Outbox: messages written in the same transaction as the change that caused them.
-- The relay publishes them in id order and stamps published_at; rows are kept so a fresh
-- broker can be refilled from PostgreSQL (rectify outbox replay).
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    value        bytea       NOT NULL,
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Inbox: ids of the messages this service has already applied; a redelivery changes nothing.
CREATE TABLE processed_messages (
    message_id   uuid PRIMARY KEY,
    topic        text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Dead letters this service produced, also sent to the dead-letter topic through the outbox.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    topic       text        NOT NULL,
    kafka_partition int     NOT NULL,
    kafka_offset bigint     NOT NULL,
    key         text,
    value       bytea       NOT NULL,
    code        text        NOT NULL,
    reason      text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    redriven_at timestamptz,
    UNIQUE (topic, kafka_partition, kafka_offset)
);
