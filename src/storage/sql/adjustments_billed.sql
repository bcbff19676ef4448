-- Record on which invoice ($2: its number) each adjustment ($1: its id) was billed, so
-- that no later invoice bills it again.
UPDATE rating_adjustments a SET billed_on = b.number
  FROM UNNEST($1::int8[], $2::text[]) AS b (id, number)
 WHERE a.id = b.id
