-- What the last refresh of the report aggregates did (report_refresh() keeps one row).
SELECT seconds, whole, periods, days FROM report_refreshes
