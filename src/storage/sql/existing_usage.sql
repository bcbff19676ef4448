SELECT record_id FROM usage_ids WHERE record_id = ANY($1::text[])
