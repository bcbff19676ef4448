SELECT record_id FROM usage_events WHERE record_id = ANY($1::text[])
