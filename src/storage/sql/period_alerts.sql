-- Period $1's credit-limit alerts: customers per threshold.
SELECT threshold, count(*) FROM alerts WHERE period = $1 GROUP BY 1 ORDER BY 1
