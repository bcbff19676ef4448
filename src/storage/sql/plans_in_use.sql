-- The plans customers are on that a new catalog ($1: its plan codes) does not have, with
-- how many customers are on each: such a catalog is refused.
SELECT plan, count(*)
  FROM customers
 WHERE plan <> ALL($1::text[])
 GROUP BY plan
 ORDER BY plan
