-- Records already stored, as usage or held in suspense: either way a new copy is a
-- duplicate (a suspense record reaches usage only through suspense resolution).
SELECT record_id FROM usage_events WHERE record_id = ANY($1::text[])
UNION ALL
SELECT record_id FROM suspense_records WHERE record_id = ANY($1::text[])
