INSERT INTO rating_adjustments (record_id, customer_id, period, catalog_version, old_amount, new_amount, delta, in_place)
SELECT * FROM UNNEST($1::text[], $2::int8[], $3::date[], $4::int4[], $5::numeric[], $6::numeric[], $7::numeric[], $8::bool[])
