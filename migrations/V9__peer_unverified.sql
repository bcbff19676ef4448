-- Peers that are no assigned number: usage rows say so, and data_quality counts them.
--
-- A peer outside every range the numbering plan lists as assigned, but with the shape
-- of an E.164 number and a known country code, is accepted and priced by that country
-- (the call happened and is paid for). `peer_unverified` marks it, so that such usage
-- can be found, explained and counted. Rows stored before had only valid peers.
ALTER TABLE usage_events ADD COLUMN peer_unverified BOOLEAN NOT NULL DEFAULT false;

-- Of a batch's accepted records, those with an unverified peer: counted with the other
-- outcomes, in the same transaction, so the day's figure matches its `accepted`.
ALTER TABLE committed_batches ADD COLUMN unverified_peers INTEGER NOT NULL DEFAULT 0;

-- report_quality_mv and report_data_quality as in V4, with the count per day.
DROP VIEW report_data_quality;
DROP FUNCTION report_data_quality(DATE, TEXT, TEXT, TEXT, INT);
DROP MATERIALIZED VIEW report_quality_mv;

CREATE MATERIALIZED VIEW report_quality_mv AS
SELECT committed_at::date AS day,
       sum(records)::bigint AS consumed, sum(accepted)::bigint AS accepted,
       sum(unverified_peers)::bigint AS unverified_peers,
       sum(duplicates)::bigint AS duplicates, sum(suspense)::bigint AS suspense,
       sum(rejected)::bigint AS rejected
  FROM committed_batches
 GROUP BY 1;
CREATE UNIQUE INDEX report_quality_mv_key ON report_quality_mv (day);

CREATE FUNCTION report_data_quality(p_period DATE, p_service TEXT, p_region TEXT, p_plan TEXT, p_limit INT)
RETURNS TABLE (day DATE, consumed BIGINT, accepted BIGINT, unverified_peers BIGINT,
               duplicates BIGINT, suspense BIGINT, rejected BIGINT, reject_rate_pct NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT q.day, q.consumed, q.accepted, q.unverified_peers, q.duplicates, q.suspense,
           q.rejected,
           CASE WHEN q.consumed > 0 THEN round(100.0 * q.rejected / q.consumed, 2) END
      FROM report_quality_mv q
     WHERE p_period IS NULL
        OR (q.day >= p_period AND q.day < p_period + interval '1 month')
     ORDER BY q.day
$$;

CREATE VIEW report_data_quality AS SELECT * FROM report_data_quality(NULL, NULL, NULL, NULL, NULL);
