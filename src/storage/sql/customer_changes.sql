-- The customer change counter (migration V6): it moves when a statement that changed
-- customers commits, so a cache of customers knows when to read them again.
SELECT version FROM customer_changes
