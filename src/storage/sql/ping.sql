-- The cheapest statement that shows the connection works.
SELECT 1
