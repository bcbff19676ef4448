-- Drop the buckets of some (customer, period) pairs, before rebuild_buckets.sql writes
-- them again from the stored events.
DELETE FROM usage_buckets
 WHERE (customer_id, period) IN (SELECT * FROM UNNEST($1::int8[], $2::date[]))
