-- Whether this database has processed records or issued invoices already.
SELECT EXISTS (SELECT 1 FROM pipeline_counters) OR EXISTS (SELECT 1 FROM invoices)
