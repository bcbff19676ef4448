-- The customers' regions ('unknown' for none), for the dashboard's selects.
SELECT DISTINCT coalesce(region, 'unknown') FROM customers ORDER BY 1
