-- Usage of a closed period, owed on the next open invoice.
INSERT INTO rating_adjustments (record_id, customer_id, period, catalog_version, old_amount,
                                new_amount, delta, in_place, kind)
SELECT r, c, p, v, 0, a, a, false, 'late'
  FROM UNNEST($1::text[], $2::int8[], $3::date[], $4::int4[], $5::numeric[]) AS u (r, c, p, v, a)
