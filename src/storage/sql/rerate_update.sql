-- Re-price stored events of open periods in place (replay --rerate).
UPDATE usage_events u
   SET period = v.period, plan = v.plan, tariff_id = v.tariff_id, zone = v.zone, band = v.band,
       bands = v.bands::text[], band_units = v.band_units::int8[],
       band_amounts = v.band_amounts::numeric[], units = v.units, amount = v.amount,
       cost = v.cost, catalog_version = v.catalog_version
  FROM UNNEST($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
              $8::text[], $9::text[], $10::int8[], $11::numeric[], $12::numeric[], $13::int4[])
    AS v (record_id, period, plan, tariff_id, zone, band, bands, band_units, band_amounts, units,
          amount, cost, catalog_version)
 WHERE u.record_id = v.record_id
