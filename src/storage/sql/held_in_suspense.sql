-- Records of this batch already held in suspense (a small table: records of unknown
-- subscribers, until they are resolved).
SELECT record_id FROM suspense_records WHERE record_id = ANY($1::text[])
