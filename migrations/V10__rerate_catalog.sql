-- The catalog version that was active when `cdrflow replay --rerate` was asked for: the
-- records it prices again must be priced with this version or a newer one. A batch of
-- the rerate range priced with an older one (the daemon had not seen the new version
-- yet) is not committed and is read again once the rater has loaded it. Cleared with
-- `rerate_below`.
ALTER TABLE consumer_offsets ADD COLUMN rerate_catalog_version INTEGER;
