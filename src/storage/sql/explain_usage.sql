-- One stored event for `cdrflow explain`: its normalization in the shape of
-- NormalizedCdr, its stored rating and where it came from.
SELECT json_build_object(
         'record_id', u.record_id, 'record_type', u.record_type, 'subscriber', u.msisdn,
         'peer', u.peer_msisdn, 'peer_country', u.peer_country, 'peer_class', u.peer_class,
         'peer_unverified', u.peer_unverified,
         'event_time', u.event_time, 'duration_sec', u.duration_sec,
         'volume_bytes', u.volume_bytes, 'session_duration_sec', u.session_duration_sec,
         'cell_id', u.cell_id, 'city', u.city, 'region', u.region,
         'technology', u.technology, 'roaming_country', u.roaming_country) AS normalized,
       u.customer_id, c.name, u.plan, u.catalog_version, u.amount, u.units, u.tariff_id,
       u.zone, u.bands, u.src_topic, u.src_partition, u.src_offset, u.kafka_ts, u.ingested_at,
       s.raw AS suspense_raw, c.msisdn
  FROM usage_events u
  JOIN customers c ON c.customer_id = u.customer_id
  LEFT JOIN suspense_records s ON s.record_id = u.record_id
 WHERE u.record_id = $1
