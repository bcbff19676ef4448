-- The source text of catalog version $1, as it was applied.
SELECT source FROM catalog_versions WHERE version = $1
