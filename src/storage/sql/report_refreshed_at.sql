-- When the report aggregates were last refreshed (report_refresh() keeps one row), if
-- ever.
SELECT refreshed_at FROM report_refreshes
