-- The plans of catalog version $1, for the reports.
INSERT INTO catalog_plans (version, plan, name, monthly_fee)
SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::numeric[])
