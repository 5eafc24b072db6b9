-- The filing channel learns the opaque complainant ref of what it filed, to relay that person's rating later.
ALTER TABLE submissions ADD COLUMN complainant_ref text;
