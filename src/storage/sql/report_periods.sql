-- The periods the report aggregates have, newest first, for the dashboard's selects.
SELECT DISTINCT period FROM report_segment_agg ORDER BY period DESC
