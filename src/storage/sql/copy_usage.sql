-- A batch's new usage rows, checked to be new in this transaction (see batch.rs), as a
-- binary COPY. The column order is USAGE_COPY_TYPES' order.
COPY usage_events (
    record_id, customer_id, record_type, msisdn, peer_msisdn, peer_country, peer_class,
    event_time, duration_sec, volume_bytes, session_duration_sec, cell_id, city, region,
    technology, roaming_country, src_offset, kafka_ts,
    period, plan, tariff_id, zone, band, bands, band_units, band_amounts, units, amount, cost,
    catalog_version, src_topic, src_partition)
FROM STDIN (FORMAT binary)
