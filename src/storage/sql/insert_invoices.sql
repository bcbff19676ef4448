-- Store numbered invoices, all issued at $11, each with its JSON document.
INSERT INTO invoices (number, seq, customer_id, period, catalog_version, currency,
                      subtotal, vat, total, document, issued_at)
SELECT n, s, c, p, v, cur, st, vat, t, d, $11
  FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::date[], $5::int4[], $6::text[],
              $7::numeric[], $8::numeric[], $9::numeric[], $10::text[])
    AS x (n, s, c, p, v, cur, st, vat, t, d)
