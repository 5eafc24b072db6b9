-- Commands `rectify seed` put in intake's outbox: a simulated month replayed through the running system.
-- Each keeps the simulation's actor and time; this table says they came from the seed (and makes seeding
-- idempotent: a command id is stored, and sent, once).
CREATE TABLE seeded_commands (
    command_id uuid PRIMARY KEY,
    seed       integer     NOT NULL,
    case_id    text        NOT NULL,
    issued_at  timestamptz NOT NULL,
    agency_id  text        NOT NULL,
    seeded_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX seeded_commands_seed ON seeded_commands (seed);

-- Which month each seed replays, fixed the first time it is seeded, so seeding again (even days later)
-- replays the same month: the same cases at the same times, now up to a later moment.
CREATE TABLE seeded_months (
    seed       integer PRIMARY KEY,
    start_day  date        NOT NULL,
    days       integer     NOT NULL CHECK (days > 0),
    cases      integer     NOT NULL CHECK (cases > 0),
    seeded_at  timestamptz NOT NULL DEFAULT now()
);
