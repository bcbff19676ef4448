-- A batch reached the end of the range a `replay --rerate` asked to price again: later
-- replays without --rerate skip what is stored, as usual.
UPDATE consumer_offsets SET rerate_below = NULL, rerate_catalog_version = NULL
 WHERE group_id = $1 AND topic = $2 AND partition = $3
