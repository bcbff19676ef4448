-- The plans of the active catalog version, for the dashboard's selects.
SELECT plan
  FROM catalog_plans
 WHERE version = (SELECT max(version) FROM catalog_versions)
 ORDER BY plan
