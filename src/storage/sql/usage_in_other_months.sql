-- Usage events from topic $2 dated in periods other than $1, per period (YYYY-MM).
SELECT to_char(period, 'YYYY-MM'), count(*) FROM usage_events
 WHERE period <> $1 AND src_topic = $2 GROUP BY 1
