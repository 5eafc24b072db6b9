-- Exactly-once by stream version instead of a claim per event id (docs/scoring.md): case_facts.version is the
-- version the case is applied up to, events of every kind. A case whose CaseFiled could not be scored (it was
-- dead-lettered) has no facts, yet its other events are counted: it gets a row with its version alone.
ALTER TABLE case_facts ALTER COLUMN recorded_at DROP NOT NULL, ALTER COLUMN state DROP NOT NULL;
COMMENT ON COLUMN case_facts.version IS 'the stream version the case is applied up to (events of every kind)';
COMMENT ON COLUMN case_facts.state IS 'null: a case with no facts (its CaseFiled was dead-lettered), version alone';
