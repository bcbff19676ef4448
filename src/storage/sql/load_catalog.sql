-- A stored catalog version with its file: version $1, or the active (highest) one when
-- $1 is NULL.
SELECT version, label, sha256, applied_at, source
  FROM catalog_versions
 WHERE version = COALESCE($1, (SELECT max(version) FROM catalog_versions))
