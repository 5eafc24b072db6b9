-- What Open311 shows of a case: its category (service_code) and when it was filed (requested_datetime).
ALTER TABLE case_access
    ADD COLUMN category text,
    ADD COLUMN filed_at timestamptz NOT NULL DEFAULT now();

-- Cases filed before this migration: the category from the FileComplaint intake sent (kept in the outbox),
-- the filing time from its submission.
UPDATE case_access a SET category = c.category
FROM (
    SELECT key AS case_id, convert_from(value, 'UTF8')::jsonb #>> '{payload,category}' AS category
    FROM outbox
    WHERE topic = 'rectify.intake.commands.v1'
      AND convert_from(value, 'UTF8')::jsonb ->> 'command_type' = 'FileComplaint'
) c
WHERE a.case_id = c.case_id;

UPDATE case_access a SET filed_at = s.received_at
FROM submissions s
WHERE s.case_id = a.case_id AND s.command_type = 'FileComplaint';
