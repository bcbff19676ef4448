-- The buckets of some (customer, period) pairs as their stored events make them: what the
-- additive upserts must always equal. A split call's parts are in its band arrays; an
-- event in one band is priced again from the catalog's price for its band (the same
-- rounding as rating: half away from zero at 6 decimals); what the parts do not explain
-- (connection fee, minimum top-up) is the event's `extra`, on its first part.
WITH e AS (
    SELECT record_id, customer_id, period, tariff_id, catalog_version, record_type, zone,
           amount, cost, band_amounts,
           COALESCE(bands, ARRAY[COALESCE(band, '-')]) AS bands,
           COALESCE(band_units, ARRAY[units]) AS band_units
      FROM usage_events
     WHERE (customer_id, period) IN (SELECT * FROM UNNEST($1::int8[], $2::date[]))
       AND amount IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM rating_adjustments a
                        WHERE a.record_id = usage_events.record_id AND a.kind = 'late')
), parts AS (
    SELECT e.*, x.band, x.units, x.i, COALESCE(t.price, 0) AS price,
           COALESCE(e.band_amounts[x.i],
                    CASE e.record_type
                        WHEN 'voice' THEN round(COALESCE(t.price, 0) * x.units / 60, 6)
                        WHEN 'sms' THEN round(COALESCE(t.price, 0) * x.units, 6)
                        ELSE round(COALESCE(t.price, 0) * x.units / 1024, 6)
                    END) AS part_amount
      FROM e
     CROSS JOIN LATERAL unnest(e.bands, e.band_units) WITH ORDINALITY AS x (band, units, i)
      LEFT JOIN catalog_tariffs t
        ON t.version = e.catalog_version AND t.tariff_id = e.tariff_id AND t.band = x.band
), events AS (
    SELECT parts.*, amount - sum(part_amount) OVER (PARTITION BY record_id) AS event_extra
      FROM parts
)
SELECT customer_id, period, tariff_id, band, catalog_version, record_type AS service, zone,
       price, sum(units)::int8 AS units, count(*) FILTER (WHERE i = 1) AS events,
       sum(part_amount) AS amount,
       COALESCE(sum(event_extra) FILTER (WHERE i = 1), 0) AS extra,
       COALESCE(sum(cost) FILTER (WHERE i = 1), 0) AS cost
  FROM events
 GROUP BY customer_id, period, tariff_id, band, catalog_version, record_type, zone, price
