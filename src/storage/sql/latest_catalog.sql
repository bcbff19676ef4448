-- The highest stored catalog version and the SHA-256 of its file: an apply of the same
-- file stores nothing new.
SELECT version, sha256 FROM catalog_versions ORDER BY version DESC LIMIT 1
