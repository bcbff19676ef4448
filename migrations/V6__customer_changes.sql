-- A counter of the statements that changed customers, bumped in their own transaction.
--
-- Why: the rater kept each subscriber it looked up for 5 s only, so that a change of plan
-- was in force within 5 s; at 100,000 customers most of every batch was looked up again.
-- Now it keeps them until this counter moves (it reads it every second) and then starts
-- over. The counter becomes visible when the change commits, never before, so a lookup
-- can not cache a row older than a change the rater has not yet seen.
--
-- The price: transactions that change customers wait for each other's commit at the
-- counter row (customer imports are rare, and each chunk commits on its own).
CREATE TABLE customer_changes (
    id       BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    version  BIGINT NOT NULL
);
INSERT INTO customer_changes (version) VALUES (0);

CREATE FUNCTION customer_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE customer_changes SET version = version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER customers_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION customer_changed();
