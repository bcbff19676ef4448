-- Store the lines of invoices, numbered from 1 within each invoice.
INSERT INTO invoice_lines (number, line_no, kind, service, description, event_date,
                           quantity, unit, rated, amount)
SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[],
                     $6::date[], $7::numeric[], $8::text[], $9::numeric[], $10::numeric[])
