-- Write the buckets of some (customer, period) pairs as their stored events make them,
-- after delete_buckets.sql dropped the old ones. Only the head of the statement: its
-- query is buckets_from_usage.sql, appended to it at compile time, which stays a
-- statement of its own so that it can be run on its own to check stored buckets.
INSERT INTO usage_buckets (customer_id, period, tariff_id, band, catalog_version,
                           service, zone, price, units, events, amount, extra, cost)
