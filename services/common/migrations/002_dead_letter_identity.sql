-- A dead letter is identified by where it was read and what it said: after a broker restart, offsets
-- start again, and a different message at a reused offset must still be dead-lettered.
ALTER TABLE dead_letters ADD COLUMN value_sha256 bytea;
UPDATE dead_letters SET value_sha256 = sha256(value);
ALTER TABLE dead_letters ALTER COLUMN value_sha256 SET NOT NULL;
ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_topic_kafka_partition_kafka_offset_key;
ALTER TABLE dead_letters ADD CONSTRAINT dead_letters_identity UNIQUE (topic, kafka_partition, kafka_offset, value_sha256);
