-- New buckets copied in (binary COPY): no conflict check of each row. The copy runs
-- under a savepoint, so a key stored all the same fails it whole and the rows are
-- upserted instead (upsert_buckets.sql). The column order is BUCKET_COPY_TYPES' in
-- billing.rs.
COPY usage_buckets (customer_id, period, tariff_id, band, catalog_version, service, zone,
                    price, units, events, amount, extra, cost)
FROM STDIN (FORMAT binary)
