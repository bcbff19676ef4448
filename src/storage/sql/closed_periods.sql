-- Which of these periods are closed: what the daemon remembers of them can go.
SELECT period
  FROM billing_periods
 WHERE period = ANY($1::date[])
   AND closed_at IS NOT NULL
