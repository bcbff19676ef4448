-- Move stored offsets back (`cdrflow replay`), each only if it still holds the offset the
-- move starts from. With --rerate ($6), records below the old position are priced again
-- when they come back, with the catalog active now or a newer one: both bounds rise,
-- never fall.
UPDATE consumer_offsets c
   SET next_offset = m.to_offset,
       updated_at = now(),
       rerate_below = CASE WHEN $6 THEN GREATEST(COALESCE(c.rerate_below, 0), m.from_offset)
                           ELSE c.rerate_below END,
       rerate_catalog_version = CASE WHEN $6 THEN GREATEST(c.rerate_catalog_version,
                                                           (SELECT max(version) FROM catalog_versions))
                                     ELSE c.rerate_catalog_version END
  FROM UNNEST($3::int4[], $4::int8[], $5::int8[]) AS m (partition, from_offset, to_offset)
 WHERE c.group_id = $1 AND c.topic = $2 AND c.partition = m.partition
   AND c.next_offset = m.from_offset
