-- Usage rows of resolved suspense records; the caller appends ON CONFLICT (record_id) DO
-- NOTHING. (The batch path copies its rows instead: copy_usage.sql.) The band arrays come
-- as array literals, NULL for an event in a single band.
INSERT INTO usage_events (
    record_id, customer_id, record_type, msisdn, peer_msisdn, peer_country, peer_class,
    event_time, duration_sec, volume_bytes, session_duration_sec, cell_id, city, region,
    technology, roaming_country, src_offset, kafka_ts,
    period, plan, tariff_id, zone, band, bands, band_units, band_amounts, units, amount, cost,
    catalog_version, src_topic, src_partition)
SELECT u.record_id, u.customer_id, u.record_type, u.msisdn, u.peer, u.peer_country, u.peer_class,
       u.event_time, u.duration, u.volume, u.session, u.cell, u.city, u.region,
       u.technology, u.roaming, u.src_offset, u.kafka_ts,
       u.period, u.plan, u.tariff_id, u.zone, u.band, u.bands::text[], u.band_units::int8[],
       u.band_amounts::numeric[], u.units, u.amount, u.cost, u.catalog_version, $31, $32
  FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::timestamptz[], $9::int4[], $10::int8[], $11::int4[], $12::text[], $13::text[], $14::text[],
              $15::text[], $16::text[], $17::int8[], $18::timestamptz[],
              $19::date[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[],
              $26::text[], $27::int8[], $28::numeric[], $29::numeric[], $30::int4[])
    AS u (record_id, customer_id, record_type, msisdn, peer, peer_country, peer_class,
          event_time, duration, volume, session, cell, city, region, technology, roaming,
          src_offset, kafka_ts, period, plan, tariff_id, zone, band, bands, band_units,
          band_amounts, units, amount, cost, catalog_version)
