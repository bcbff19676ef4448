-- The stored buckets of some customers in some periods.
SELECT customer_id, period, tariff_id, band, catalog_version, service, zone, price,
       units, events, amount, extra, cost
  FROM usage_buckets
 WHERE customer_id = ANY($1::int8[]) AND period = ANY($2::date[])
