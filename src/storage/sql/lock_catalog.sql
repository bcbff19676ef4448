-- One catalog applier at a time, until its transaction ends, so that versions are
-- gap-free and "the highest" is well defined. EXCLUSIVE mode still lets readers load
-- the catalog meanwhile.
LOCK TABLE catalog_versions IN EXCLUSIVE MODE
