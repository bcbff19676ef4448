-- The number of the active (highest) catalog version, NULL before the first: a cheap
-- check for a newer catalog.
SELECT max(version) FROM catalog_versions
