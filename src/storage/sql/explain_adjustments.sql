-- Every rating adjustment of one stored event, for `cdrflow explain`, in the order they
-- were booked.
SELECT period, catalog_version, old_amount, new_amount, delta, in_place, created_at
  FROM rating_adjustments
 WHERE record_id = $1
 ORDER BY id
