-- A new catalog version with its file as it was given: loading a version parses this
-- text again, so a version always means exactly what its file said.
INSERT INTO catalog_versions (version, label, source, sha256) VALUES ($1, $2, $3, $4)
