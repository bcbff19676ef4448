-- The priced cells of catalog version $1, one row per tariff and band, for the reports.
INSERT INTO catalog_tariffs (version, tariff_id, plan, service, zone, band, unit, price,
                             wholesale, charging, connection_fee, minimum_charge)
SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::numeric[], $9::numeric[], $10::text[],
                         $11::numeric[], $12::numeric[])
