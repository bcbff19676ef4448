-- Add a batch's new usage to the month-to-date buckets. Rows come sorted by key, so two
-- transactions touching the same customers lock them in the same order.
INSERT INTO usage_buckets AS b (
    customer_id, period, tariff_id, band, catalog_version, service, zone, price,
    units, events, amount, extra, cost)
SELECT * FROM UNNEST($1::int8[], $2::date[], $3::text[], $4::text[], $5::int4[], $6::text[],
                     $7::text[], $8::numeric[], $9::int8[], $10::int8[], $11::numeric[],
                     $12::numeric[], $13::numeric[])
ON CONFLICT (customer_id, period, tariff_id, band, catalog_version) DO UPDATE
   SET units = b.units + EXCLUDED.units,
       events = b.events + EXCLUDED.events,
       amount = b.amount + EXCLUDED.amount,
       extra = b.extra + EXCLUDED.extra,
       cost = b.cost + EXCLUDED.cost
