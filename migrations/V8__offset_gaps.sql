-- Ranges of a partition's log that the broker deleted (retention, truncation) before the
-- group read them: records that were never consumed, so never billed. The source records
-- a range here in the same statement that moves the stored offset past it, and
-- `cdrflow stats` shows every range until the records are recovered from the switch.
CREATE TABLE offset_gaps (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   int4        NOT NULL,
    from_offset int8        NOT NULL,
    to_offset   int8        NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition, from_offset),
    CHECK (to_offset > from_offset)
);
