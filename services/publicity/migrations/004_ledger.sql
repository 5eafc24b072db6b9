-- The public ledger (issue 10, docs/public-ledger.md): every public fact applied here, hash-chained, append-only.
-- Written in the same transaction as the projection; holds public facts only (the payloads publicity consumes).
CREATE TABLE ledger (
    seq         bigint PRIMARY KEY,
    appended_at text   NOT NULL,  -- UTC text with microseconds, exactly as hashed
    event_id    uuid   NOT NULL UNIQUE,
    kind        text   NOT NULL CHECK (kind IN ('case', 'ranking')),
    prev_hash   text   NOT NULL,
    fact        text   NOT NULL,  -- canonical JSON, exactly as hashed
    hash        text   NOT NULL
);

-- One row: the newest entry. Appenders lock it, so entries are numbered and chained one transaction at a time.
CREATE TABLE ledger_head (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    seq         bigint  NOT NULL,
    hash        text    NOT NULL,
    appended_at text
);
INSERT INTO ledger_head VALUES (true, 0, repeat('0', 64), NULL);

-- The head at the end of each day (China time): the newest entry appended that day.
CREATE TABLE ledger_days (
    day  date   PRIMARY KEY,
    seq  bigint NOT NULL,
    hash text   NOT NULL
);
