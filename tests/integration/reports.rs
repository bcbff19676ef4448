//! The reports of `docs/reports.md` on a small hand-made data set whose every answer
//! is worked out by hand in the comments: each report's exact rows (money as exact
//! decimal strings, RFM scores and segments included) under each kind of filter and the
//! *latest* default; the table, CSV and JSON renderings carrying the same cells; bad
//! requests refused with exit status 2 before the database is touched; and the daemon's
//! `/api/reports` serving the CLI's answers byte for byte, with the dashboard's
//! drill-down.
//!
//! # The data set
//!
//! Usage months June to September 2026, in the operator's zone Africa/Casablanca, which
//! is UTC+1 all of that time (it goes back to UTC+0 around Ramadan only, mid-February to
//! late March in 2026). Customers (id, home region, plan, activated on):
//!
//! | id | name           | region             | plan     | activated  |
//! |----|----------------|--------------------|----------|------------|
//! | 1  | Amina Alaoui   | Casablanca-Settat  | business | 2025-01-10 |
//! | 2  | Brahim Bennani | Casablanca-Settat  | basic    | 2025-03-01 |
//! | 3  | Chaima Chraibi | Oriental           | basic    | 2026-08-20 |
//! | 4  | Driss Doukkali | Oriental           | business | 2025-06-01 |
//! | 5  | Fatima Fassi   | Rabat-Sale-Kenitra | basic    | 2025-02-01 |
//! | 6  | Hamid Haddad   | Rabat-Sale-Kenitra | business | 2025-05-01 |
//! | 7  | Imane Idrissi  | (none: "unknown")  | basic    | 2026-01-15 |
//! | 8  | Karim Kettani  | Casablanca-Settat  | basic    | 2026-10-05 |
//!
//! Customer 7's only event is unrated (stored before rating existed), so it has no usage;
//! customer 8 was activated after the last usage month, so no month's RFM includes them.
//!
//! Rated events (UTC time; local = UTC+1; units are seconds, messages or KB):
//!
//! | id | cust | service | UTC time         | period | zone        | units  | amount | cost  | tech |
//! |----|------|---------|------------------|--------|-------------|--------|--------|-------|------|
//! | 01 | 1    | voice   | 06-10 09:15      | 06     | domestic    | 180    | 2.80   | 0.36  | 4G   |
//! | 02 | 2    | sms     | 06-12 14:00      | 06     | domestic    | 1      | 0.20   | 0.05  | 4G   |
//! | 03 | 4    | data    | 06-15 18:00      | 06     | domestic    | 10240  | 1.00   | 0.10  | 5G   |
//! | 04 | 5    | voice   | 06-20 20:00      | 06     | intl-europe | 120    | 7.00   | 4.00  | 4G   |
//! | 05 | 5    | data    | 06-22 08:00      | 06     | domestic    | 20480  | 2.00   | 0.20  | 4G   |
//! | 06 | 6    | sms     | 06-25 11:00      | 06     | intl-europe | 1      | 1.50   | 0.50  | 3G   |
//! | 07 | 1    | voice   | 07-03 10:00      | 07     | domestic    | 300    | 4.60   | 0.60  | 5G   |
//! | 08 | 2    | voice   | 07-08 19:30      | 07     | domestic    | 60     | 1.00   | 0.12  | 4G   |
//! | 09 | 4    | sms     | 07-09 12:00      | 07     | domestic    | 1      | 0.20   | 0.05  | 4G   |
//! | 10 | 4    | data    | 07-14 16:00      | 07     | domestic    | 51200  | 5.00   | 0.50  | 5G   |
//! | 11 | 5    | voice   | 07-10 09:00      | 07     | intl-europe | 240    | 16.00  | 8.00  | 4G   |
//! | 12 | 5    | voice   | 07-15 15:00      | 07     | intl-europe | 180    | 12.00  | 6.00  | 4G   |
//! | 13 | 5    | data    | 07-20 12:00      | 07     | domestic    | 30720  | 3.00   | 0.30  | 3G   |
//! | 14 | 1    | voice   | 07-31 23:30 (*)  | 08     | domestic    | 600    | 4.10   | 1.20  | 5G   |
//! | 15 | 1    | voice   | 08-12 10:00 (**) | 08     | intl-europe | 300    | 20.00  | 10.00 | 4G   |
//! | 16 | 2    | sms     | 08-14 08:30      | 08     | domestic    | 1      | 0.20   | 0.05  | 4G   |
//! | 17 | 4    | voice   | 08-20 13:00      | 08     | domestic    | 120    | 1.90   | 0.24  | 4G   |
//! | 18 | 6    | data    | 08-05 07:00      | 08     | domestic    | 20480  | 2.00   | 0.20  | 3G   |
//! | 19 | 6    | sms     | 08-16 10:00      | 08     | domestic    | 1      | 0.20   | 0.05  | 3G   |
//! | 20 | 1    | data    | 09-06 23:30 (*)  | 09     | domestic    | 102400 | 10.00  | 1.00  | 5G   |
//! | 21 | 1    | voice   | 09-18 09:30      | 09     | domestic    | 420    | 6.40   | 0.84  | 5G   |
//! | 22 | 1    | sms     | 09-30 20:00      | 09     | domestic    | 1      | 0.20   | 0.05  | 5G   |
//! | 23 | 2    | voice   | 09-18 09:00      | 09     | domestic    | 180    | 2.80   | 0.36  | 4G   |
//! | 24 | 3    | sms     | 09-27 23:30 (*)  | 09     | domestic    | 1      | 0.20   | 0.05  | 4G   |
//! | 25 | 4    | data    | 09-02 07:45      | 09     | domestic    | 40960  | 4.00   | 0.40  | 4G   |
//! | 26 | 4    | voice   | 09-18 20:00      | 09     | intl-europe | 60     | 3.50   | 2.00  | 4G   |
//!
//! (*) The next day in Casablanca: 14 is Saturday 1 August 00:30 (so it is August usage),
//! 20 is Monday 7 September 00:30, 24 Monday 28 September 00:30. (**) Made in Oriental,
//! away from customer 1's home region, which is still the one reports use.
//!
//! Per month: June 6 events, customers {1,2,4,5,6}, rated 14.50, cost 5.21; July 7,
//! {1,2,4,5}, 41.80, 15.57; August 6, {1,2,4,6}, 28.40, 11.74; September 7, {1,2,3,4},
//! 27.10, 4.70.
//!
//! Invoices (subtotal / VAT 20 % / total; lines):
//! - INV-000001, customer 2, July: voice 1.00, late usage 0.20, fee 1.00 = 2.20 / 0.44 / 2.64
//! - INV-000002, customer 5, July: voice 28.00, data 3.00, late usage 7.00, fee 1.00
//!   = 39.00 / 7.80 / 46.80
//! - INV-000003, customer 4, July: sms 0.20, data 5.00, plan 199.00, data allowance
//!   −5.00, fee 1.00 = 200.20 / 40.04 / 240.24
//! - INV-000004, customer 4, August: voice 1.90, plan 199.00, voice allowance −1.90, late
//!   usage 5.00, fee 1.00 = 205.00 / 41.00 / 246.00
//! - INV-000005, customer 2, August: sms 0.20, sms allowance −0.20, fee 1.00 = 1.00 / 0.20
//!   / 1.20
//!
//! So July: 3 invoices, billed 241.40, with VAT 289.68; August: 2, 206.00, 247.20. Per
//! service (usage lines and that service's allowance credits, as the SQL sums them):
//! July voice 1.00 + 28.00, data 3.00 + (5.00 − 5.00), sms 0.20; August voice
//! 1.90 − 1.90, sms 0.20 − 0.20.

use crate::helpers::*;
use cdrflow::storage::reports::REPORTS;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The operator's zone in the shipped catalog, in which the aggregates are refreshed.
pub const TZ: &str = "Africa/Casablanca";

pub const DATA: &str = r#"
INSERT INTO customers (customer_id, msisdn, name, region, plan, activated_on) VALUES
    (1, '+212600000001', 'Amina Alaoui',   'Casablanca-Settat',  'business', '2025-01-10'),
    (2, '+212600000002', 'Brahim Bennani', 'Casablanca-Settat',  'basic',    '2025-03-01'),
    (3, '+212600000003', 'Chaima Chraibi', 'Oriental',           'basic',    '2026-08-20'),
    (4, '+212600000004', 'Driss Doukkali', 'Oriental',           'business', '2025-06-01'),
    (5, '+212600000005', 'Fatima Fassi',   'Rabat-Sale-Kenitra', 'basic',    '2025-02-01'),
    (6, '+212600000006', 'Hamid Haddad',   'Rabat-Sale-Kenitra', 'business', '2025-05-01'),
    (7, '+212600000007', 'Imane Idrissi',  NULL,                 'basic',    '2026-01-15'),
    (8, '+212600000008', 'Karim Kettani',  'Casablanca-Settat',  'basic',    '2026-10-05');
SELECT setval('customers_customer_id_seq', 8);

INSERT INTO usage_events (record_id, customer_id, msisdn, record_type, event_time, period,
       zone, band, units, amount, cost, technology, region, city, cell_id, peer_msisdn,
       peer_country, peer_class, duration_sec, volume_bytes, session_duration_sec, plan,
       tariff_id, catalog_version, src_topic, src_partition, src_offset, ingested_at)
SELECT 'rpt-' || e.n, e.cust, c.msisdn, e.service, e.at::timestamptz, e.period::date,
       e.zone, e.band, e.units, e.amount::numeric, e.cost::numeric, e.tech,
       coalesce(e.place, c.region, 'Casablanca-Settat'),
       CASE coalesce(e.place, c.region) WHEN 'Oriental' THEN 'Oujda'
            WHEN 'Rabat-Sale-Kenitra' THEN 'Rabat' ELSE 'Casablanca' END,
       'cell-' || e.n,
       CASE WHEN e.service = 'data' THEN NULL
            WHEN e.zone = 'intl-europe' THEN '+33612345678' ELSE '+212611111111' END,
       CASE WHEN e.service = 'data' THEN NULL
            WHEN e.zone = 'intl-europe' THEN 'FR' ELSE 'MA' END,
       CASE WHEN e.service = 'data' THEN NULL
            WHEN e.zone = 'intl-europe' THEN 'international' ELSE 'domestic' END,
       CASE WHEN e.service = 'voice' THEN e.units END,
       CASE WHEN e.service = 'data' THEN e.units * 1024 END,
       CASE WHEN e.service = 'data' THEN 600 END,
       CASE WHEN e.amount IS NOT NULL THEN c.plan END,
       CASE WHEN e.amount IS NOT NULL THEN c.plan || '/' || e.service || '/' || e.zone END,
       CASE WHEN e.amount IS NOT NULL THEN (SELECT max(version) FROM catalog_versions) END,
       'cdr.raw.reports', 0, e.n::int, e.at::timestamptz + interval '5 seconds'
  FROM (VALUES
    ('01', 1, 'voice', '2026-06-10 09:15Z', '2026-06-01', 'domestic',    'peak',    180,    '2.800000',  '0.360000',  '4G', NULL),
    ('02', 2, 'sms',   '2026-06-12 14:00Z', '2026-06-01', 'domestic',    'peak',    1,      '0.200000',  '0.050000',  '4G', NULL),
    ('03', 4, 'data',  '2026-06-15 18:00Z', '2026-06-01', 'domestic',    'peak',    10240,  '1.000000',  '0.100000',  '5G', NULL),
    ('04', 5, 'voice', '2026-06-20 20:00Z', '2026-06-01', 'intl-europe', 'weekend', 120,    '7.000000',  '4.000000',  '4G', NULL),
    ('05', 5, 'data',  '2026-06-22 08:00Z', '2026-06-01', 'domestic',    'peak',    20480,  '2.000000',  '0.200000',  '4G', NULL),
    ('06', 6, 'sms',   '2026-06-25 11:00Z', '2026-06-01', 'intl-europe', 'peak',    1,      '1.500000',  '0.500000',  '3G', NULL),
    ('07', 1, 'voice', '2026-07-03 10:00Z', '2026-07-01', 'domestic',    'peak',    300,    '4.600000',  '0.600000',  '5G', NULL),
    ('08', 2, 'voice', '2026-07-08 19:30Z', '2026-07-01', 'domestic',    'offpeak', 60,     '1.000000',  '0.120000',  '4G', NULL),
    ('09', 4, 'sms',   '2026-07-09 12:00Z', '2026-07-01', 'domestic',    'peak',    1,      '0.200000',  '0.050000',  '4G', NULL),
    ('10', 4, 'data',  '2026-07-14 16:00Z', '2026-07-01', 'domestic',    'peak',    51200,  '5.000000',  '0.500000',  '5G', NULL),
    ('11', 5, 'voice', '2026-07-10 09:00Z', '2026-07-01', 'intl-europe', 'peak',    240,    '16.000000', '8.000000',  '4G', NULL),
    ('12', 5, 'voice', '2026-07-15 15:00Z', '2026-07-01', 'intl-europe', 'peak',    180,    '12.000000', '6.000000',  '4G', NULL),
    ('13', 5, 'data',  '2026-07-20 12:00Z', '2026-07-01', 'domestic',    'peak',    30720,  '3.000000',  '0.300000',  '3G', NULL),
    ('14', 1, 'voice', '2026-07-31 23:30Z', '2026-08-01', 'domestic',    'weekend', 600,    '4.100000',  '1.200000',  '5G', NULL),
    ('15', 1, 'voice', '2026-08-12 10:00Z', '2026-08-01', 'intl-europe', 'peak',    300,    '20.000000', '10.000000', '4G', 'Oriental'),
    ('16', 2, 'sms',   '2026-08-14 08:30Z', '2026-08-01', 'domestic',    'peak',    1,      '0.200000',  '0.050000',  '4G', NULL),
    ('17', 4, 'voice', '2026-08-20 13:00Z', '2026-08-01', 'domestic',    'peak',    120,    '1.900000',  '0.240000',  '4G', NULL),
    ('18', 6, 'data',  '2026-08-05 07:00Z', '2026-08-01', 'domestic',    'peak',    20480,  '2.000000',  '0.200000',  '3G', NULL),
    ('19', 6, 'sms',   '2026-08-16 10:00Z', '2026-08-01', 'domestic',    'weekend', 1,      '0.200000',  '0.050000',  '3G', NULL),
    ('20', 1, 'data',  '2026-09-06 23:30Z', '2026-09-01', 'domestic',    'offpeak', 102400, '10.000000', '1.000000',  '5G', NULL),
    ('21', 1, 'voice', '2026-09-18 09:30Z', '2026-09-01', 'domestic',    'peak',    420,    '6.400000',  '0.840000',  '5G', NULL),
    ('22', 1, 'sms',   '2026-09-30 20:00Z', '2026-09-01', 'domestic',    'offpeak', 1,      '0.200000',  '0.050000',  '5G', NULL),
    ('23', 2, 'voice', '2026-09-18 09:00Z', '2026-09-01', 'domestic',    'peak',    180,    '2.800000',  '0.360000',  '4G', NULL),
    ('24', 3, 'sms',   '2026-09-27 23:30Z', '2026-09-01', 'domestic',    'offpeak', 1,      '0.200000',  '0.050000',  '4G', NULL),
    ('25', 4, 'data',  '2026-09-02 07:45Z', '2026-09-01', 'domestic',    'peak',    40960,  '4.000000',  '0.400000',  '4G', NULL),
    ('26', 4, 'voice', '2026-09-18 20:00Z', '2026-09-01', 'intl-europe', 'offpeak', 60,     '3.500000',  '2.000000',  '4G', NULL),
    -- Stored before rating existed: no period, no price. It is nobody's usage.
    ('27', 7, 'sms',   '2026-09-12 10:00Z', NULL,         NULL,          NULL,      NULL,   NULL,        NULL,        '4G', NULL)
  ) AS e (n, cust, service, at, period, zone, band, units, amount, cost, tech, place)
  JOIN customers c ON c.customer_id = e.cust;

INSERT INTO invoices (number, seq, customer_id, period, catalog_version, currency, subtotal,
                      vat, total, document, issued_at)
SELECT i.number, i.seq, i.customer_id, i.period::date,
       (SELECT max(version) FROM catalog_versions), 'MAD', i.subtotal::numeric,
       i.vat::numeric, i.total::numeric, '{}', i.issued_at::timestamptz
  FROM (VALUES
    ('INV-000001', 1, 2, '2026-07-01', '2.20',   '0.44',  '2.64',   '2026-08-03 08:00Z'),
    ('INV-000002', 2, 5, '2026-07-01', '39.00',  '7.80',  '46.80',  '2026-08-03 08:00Z'),
    ('INV-000003', 3, 4, '2026-07-01', '200.20', '40.04', '240.24', '2026-08-03 08:00Z'),
    ('INV-000004', 4, 4, '2026-08-01', '205.00', '41.00', '246.00', '2026-09-03 08:00Z'),
    ('INV-000005', 5, 2, '2026-08-01', '1.00',   '0.20',  '1.20',   '2026-09-03 08:00Z')
  ) AS i (number, seq, customer_id, period, subtotal, vat, total, issued_at);

INSERT INTO invoice_lines (number, line_no, kind, service, description, amount) VALUES
    ('INV-000001', 1, 'usage',          'voice', 'Voice calls (1)',                        1.00),
    ('INV-000001', 2, 'adjustment',     NULL,    'Late usage of 2026-06-12 (1 event)',     0.20),
    ('INV-000001', 3, 'regulatory_fee', NULL,    'Regulatory fee',                         1.00),
    ('INV-000002', 1, 'usage',          'voice', 'Voice calls (2)',                        28.00),
    ('INV-000002', 2, 'usage',          'data',  'Mobile data (1 sessions)',               3.00),
    ('INV-000002', 3, 'adjustment',     NULL,    'Late usage of 2026-06-20 (1 event)',     7.00),
    ('INV-000002', 4, 'regulatory_fee', NULL,    'Regulatory fee',                         1.00),
    ('INV-000003', 1, 'usage',          'sms',   'SMS (1)',                                0.20),
    ('INV-000003', 2, 'usage',          'data',  'Mobile data (1 sessions)',               5.00),
    ('INV-000003', 3, 'plan_fee',       NULL,    'Monthly fee, Business',                  199.00),
    ('INV-000003', 4, 'allowance',      'data',  'Included 5120 MB data (domestic): 50 used', -5.00),
    ('INV-000003', 5, 'regulatory_fee', NULL,    'Regulatory fee',                         1.00),
    ('INV-000004', 1, 'usage',          'voice', 'Voice calls (1)',                        1.90),
    ('INV-000004', 2, 'plan_fee',       NULL,    'Monthly fee, Business',                  199.00),
    ('INV-000004', 3, 'allowance',      'voice', 'Included 300 min voice (domestic): 2 used', -1.90),
    ('INV-000004', 4, 'adjustment',     NULL,    'Late usage of 2026-07-14 (1 event)',     5.00),
    ('INV-000004', 5, 'regulatory_fee', NULL,    'Regulatory fee',                         1.00),
    ('INV-000005', 1, 'usage',          'sms',   'SMS (1)',                                0.20),
    ('INV-000005', 2, 'allowance',      'sms',   'Included 100 SMS (domestic): 1 used',    -0.20),
    ('INV-000005', 3, 'regulatory_fee', NULL,    'Regulatory fee',                         1.00);

-- What the committers did, per batch. Two commit late in the evening UTC, which is the
-- next day in Casablanca: 31 August 23:15 UTC is 1 September, 10 September 23:30 UTC is
-- 11 September.
INSERT INTO committed_batches (group_id, topic, partition, from_offset, to_offset, records,
                               accepted, unverified_peers, duplicates, suspense, rejected,
                               committed_at) VALUES
    ('cdrflow', 'cdr.raw', 0, 0,   29,  30,  28, 0, 1, 0, 1, '2026-08-20 09:00Z'),
    ('cdrflow', 'cdr.raw', 0, 30,  49,  20,  15, 2, 0, 0, 5, '2026-08-31 23:15Z'),
    ('cdrflow', 'cdr.raw', 0, 50,  149, 100, 90, 4, 3, 2, 5, '2026-09-10 10:00Z'),
    ('cdrflow', 'cdr.raw', 1, 0,   49,  50,  48, 1, 0, 0, 2, '2026-09-10 22:30Z'),
    ('cdrflow', 'cdr.raw', 0, 150, 189, 40,  36, 0, 1, 1, 2, '2026-09-10 23:30Z'),
    ('cdrflow', 'cdr.raw', 1, 50,  59,  10,  10, 3, 0, 0, 0, '2026-09-11 12:00Z');

INSERT INTO rejected_records (src_topic, src_partition, src_offset, reason, detail, raw,
                              rejected_at) VALUES
    ('cdr.raw', 0, 3,   'missing_field',    'no event_time',        '\x7b7d', '2026-08-20 09:00Z'),
    ('cdr.raw', 0, 31,  'future_timestamp', 'event_time too late',  '\x7b7d', '2026-08-31 23:15Z'),
    ('cdr.raw', 0, 60,  'malformed_number', 'subscriber "06x"',     '\x7b7d', '2026-09-10 10:00Z'),
    ('cdr.raw', 0, 61,  'malformed_number', 'subscriber "06y"',     '\x7b7d', '2026-09-10 10:00Z'),
    ('cdr.raw', 1, 7,   'missing_field',    'no subscriber',        '\x7b7d', '2026-09-10 22:30Z'),
    ('cdr.raw', 0, 160, 'malformed_number', 'subscriber "06z"',     '\x7b7d', '2026-09-10 23:30Z');

-- Late usage owed after its month was closed (two billed on the invoices above, two
-- still owed), and one re-rating, which late_usage must leave out.
INSERT INTO rating_adjustments (record_id, customer_id, period, catalog_version, old_amount,
                                new_amount, delta, in_place, billed_on, kind)
SELECT a.record_id, a.customer_id, a.period::date, (SELECT max(version) FROM catalog_versions),
       a.old_amount::numeric, a.new_amount::numeric, a.delta::numeric, false, a.billed_on, a.kind
  FROM (VALUES
    ('rpt-02', 2, '2026-06-01', '0',        '0.200000', '0.200000',  'INV-000001', 'late'),
    ('rpt-04', 5, '2026-06-01', '0',        '7.000000', '7.000000',  'INV-000002', 'late'),
    ('rpt-06', 6, '2026-06-01', '0',        '1.500000', '1.500000',  NULL,         'late'),
    ('rpt-10', 4, '2026-07-01', '0',        '5.000000', '5.000000',  'INV-000004', 'late'),
    ('rpt-13', 5, '2026-07-01', '0',        '3.000000', '3.000000',  NULL,         'late'),
    ('rpt-07', 1, '2026-07-01', '4.600000', '4.100000', '-0.500000', NULL,         'rerate')
  ) AS a (record_id, customer_id, period, old_amount, new_amount, delta, billed_on, kind);
"#;

/// A database of its own holding the data set, the aggregates refreshed in the
/// operator's zone.
async fn dataset() -> TestDb {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(DATA)
        .await
        .expect("insert the data set");
    client
        .execute("SELECT report_refresh($1)", &[&TZ])
        .await
        .expect("refresh the report aggregates");
    db
}

/// `cdrflow report ARGS --format csv` on `db`, which must succeed: its standard output.
fn csv(db: &TestDb, args: &[&str]) -> String {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "csv", "--database-url", &db.url]);
    let (code, out, err) = cdrflow(&all);
    assert_eq!(code, 0, "cdrflow report {}: {err}", args.join(" "));
    out
}

/// The report asked with `args` answers exactly `header` and `rows`, in this order.
fn expect(db: &TestDb, args: &[&str], header: &str, rows: &[&str]) {
    let mut want = format!("{header}\n");
    for row in rows {
        want.push_str(row);
        want.push('\n');
    }
    assert_eq!(csv(db, args), want, "cdrflow report {}", args.join(" "));
}

const KPIS: &str = "period,rated,cost,customers,events,invoices,billed,billed_total,\
                    average_invoice,records_consumed,records_rejected,reject_rate_pct";
const REVENUE_BY_MONTH: &str =
    "period,customers,events,rated,cost,margin,margin_pct,invoices,billed,billed_total";
const REVENUE_BY_SERVICE: &str =
    "service,customers,events,units,rated,cost,margin,margin_pct,share_pct";
const REVENUE_BY_REGION: &str = "region,customers,events,rated,arpu,share_pct,invoices,billed";
const REVENUE_BY_REGION_MONTH: &str = "period,region,customers,rated,arpu";
const REVENUE_BY_PLAN: &str = "plan,customers,events,rated,arpu,invoices,billed";
const ARPU: &str = "period,customers,rated,arpu,invoices,billed,billed_arpu";
const TOP_CUSTOMERS: &str = "customer_id,name,msisdn,region,plan,events,rated,cost";
const RFM: &str =
    "customer_id,name,region,plan,last_event,recency_days,frequency,monetary,r,f,m,rfm,segment";
const RFM_SEGMENTS: &str =
    "segment,customers,share_pct,avg_recency_days,avg_frequency,avg_monetary,monetary";
const SERVICE_PROFITABILITY: &str = "service,zone,events,units,rated,cost,margin,margin_pct";
const USAGE_BY_HOUR: &str = "weekday,hour,events,units,rated";
const USAGE_BY_TECHNOLOGY: &str = "technology,events,units,rated,share_pct";
const DATA_QUALITY: &str =
    "day,consumed,accepted,unverified_peers,duplicates,suspense,rejected,reject_rate_pct";
const REJECTS_BY_REASON: &str = "reason,records,share_pct";
const LATE_USAGE: &str =
    "period,events,amount,billed_events,billed_amount,pending_events,pending_amount";

/// kpis, revenue_by_month, arpu and revenue_by_region_month: the month totals of usage
/// and invoices, under each filter they take.
#[tokio::test(flavor = "multi_thread")]
async fn monthly_money_reports_add_up_usage_and_invoices_under_each_filter() {
    let db = dataset().await;

    // The latest month with usage is September: 7 events of customers 1, 2, 3, 4;
    // rated 10.00 + 6.40 + 0.20 + 2.80 + 0.20 + 4.00 + 3.50 = 27.10, cost 1.00 + 0.84 +
    // 0.05 + 0.36 + 0.05 + 0.40 + 2.00 = 4.70. No invoice yet: billed 0, billed_total and
    // average_invoice empty. Records are counted since the start, whatever the filters:
    // 30 + 20 + 100 + 50 + 40 + 10 = 250 consumed, 1 + 5 + 5 + 2 + 2 + 0 = 15 rejected,
    // 1500 / 250 = 6.00 %.
    expect(
        &db,
        &["kpis"],
        KPIS,
        &["2026-09,27.100000,4.700000,4,7,0,,,,250,15,6.00"],
    );
    // July: 4.60 + 1.00 + 0.20 + 5.00 + 16.00 + 12.00 + 3.00 = 41.80, cost 0.60 + 0.12 +
    // 0.05 + 0.50 + 8.00 + 6.00 + 0.30 = 15.57; invoices 1, 2, 3: 241.40, with VAT 289.68,
    // 289.68 / 3 = 96.56 on average.
    expect(
        &db,
        &["kpis", "--period", "2026-07"],
        KPIS,
        &["2026-07,41.800000,15.570000,4,7,3,241.40,289.68,96.56,250,15,6.00"],
    );
    // July voice: events 07, 08, 11, 12 of customers 1, 2, 5: 4.60 + 1.00 + 16.00 + 12.00
    // = 33.60, cost 0.60 + 0.12 + 8.00 + 6.00 = 14.72; the invoices with voice lines are 1
    // and 2: 1.00 + 28.00 = 29.00. A service has no VAT of its own: no billed_total, no
    // average invoice.
    expect(
        &db,
        &["kpis", "--period", "2026-07", "--service", "voice"],
        KPIS,
        &["2026-07,33.600000,14.720000,3,4,2,29.00,,,250,15,6.00"],
    );
    // August, Oriental business customers: customer 4's event 17 (1.90, cost 0.24) and
    // invoice 4 (205.00, 246.00). The pipeline's counts are still the whole pipeline's.
    expect(
        &db,
        &[
            "kpis", "--period", "2026-08", "--region", "Oriental", "--plan", "business",
        ],
        KPIS,
        &["2026-08,1.900000,0.240000,1,1,1,205.00,246.00,246.00,250,15,6.00"],
    );

    // Every month; margin = rated − cost, margin_pct = margin / rated:
    // June 14.50 − 5.21 = 9.29, 64.069 %; July 41.80 − 15.57 = 26.23, 62.751 %;
    // August 28.40 − 11.74 = 16.66, 58.662 %; September 27.10 − 4.70 = 22.40, 82.657 %.
    // August invoices 4 and 5: 205.00 + 1.00 = 206.00, with VAT 246.00 + 1.20 = 247.20.
    expect(
        &db,
        &["revenue_by_month"],
        REVENUE_BY_MONTH,
        &[
            "2026-06,5,6,14.500000,5.210000,9.290000,64.07,0,,",
            "2026-07,4,7,41.800000,15.570000,26.230000,62.75,3,241.40,289.68",
            "2026-08,4,6,28.400000,11.740000,16.660000,58.66,2,206.00,247.20",
            "2026-09,4,7,27.100000,4.700000,22.400000,82.66,0,,",
        ],
    );
    // SMS: June 02 + 06 = 1.70 (cost 0.55, margin 1.15: 67.647 %), then 0.20 (09), 0.40
    // (16 + 19), 0.40 (22 + 24), each 75 % margin. Billed SMS: invoice 3's SMS line 0.20
    // in July; invoice 5's 0.20 less its SMS allowance 0.20 = 0.00 in August.
    expect(
        &db,
        &["revenue_by_month", "--service", "sms"],
        REVENUE_BY_MONTH,
        &[
            "2026-06,2,2,1.700000,0.550000,1.150000,67.65,0,,",
            "2026-07,1,1,0.200000,0.050000,0.150000,75.00,1,0.20,",
            "2026-08,2,2,0.400000,0.100000,0.300000,75.00,1,0.00,",
            "2026-09,2,2,0.400000,0.100000,0.300000,75.00,0,,",
        ],
    );
    // One month of one region: July in Oriental is customer 4's 09 + 10 = 5.20, cost
    // 0.55, margin 4.65 (89.423 %), and invoice 3.
    expect(
        &db,
        &[
            "revenue_by_month",
            "--region",
            "Oriental",
            "--period",
            "2026-07",
        ],
        REVENUE_BY_MONTH,
        &["2026-07,1,2,5.200000,0.550000,4.650000,89.42,1,200.20,240.24"],
    );

    // ARPU = rated / customers: 14.50 / 5 = 2.90; 41.80 / 4 = 10.45; 28.40 / 4 = 7.10;
    // 27.10 / 4 = 6.775, rounded half away from zero to 6.78. Billed ARPU = billed /
    // invoices: 241.40 / 3 = 80.4667; 206.00 / 2 = 103.00.
    expect(
        &db,
        &["arpu"],
        ARPU,
        &[
            "2026-06,5,14.500000,2.90,0,,",
            "2026-07,4,41.800000,10.45,3,241.40,80.47",
            "2026-08,4,28.400000,7.10,2,206.00,103.00",
            "2026-09,4,27.100000,6.78,0,,",
        ],
    );
    // Basic customers of Rabat-Sale-Kenitra: customer 5 alone (6 is on business): June
    // 04 + 05 = 9.00, July 11 + 12 + 13 = 31.00 and invoice 2 (39.00).
    expect(
        &db,
        &["arpu", "--region", "Rabat-Sale-Kenitra", "--plan", "basic"],
        ARPU,
        &[
            "2026-06,1,9.000000,9.00,0,,",
            "2026-07,1,31.000000,31.00,1,39.00,39.00",
        ],
    );
    // August voice: 14 + 15 (customer 1) and 17 (customer 4): 4.10 + 20.00 + 1.90 = 26.00
    // over 2 customers; invoice 4's voice line 1.90 less its voice allowance 1.90.
    expect(
        &db,
        &["arpu", "--period", "2026-08", "--service", "voice"],
        ARPU,
        &["2026-08,2,26.000000,13.00,1,0.00,0.00"],
    );

    // Per month and home region (event 15, made in Oriental, stays customer 1's, in
    // Casablanca-Settat): June 2.80 + 0.20 = 3.00 over 2; 1.00; 9.00 + 1.50 = 10.50 over 2.
    // July 4.60 + 1.00 = 5.60 over 2; 5.20; 31.00. August 4.10 + 20.00 + 0.20 = 24.30 over
    // 2; 1.90; 2.20. September 16.60 + 2.80 = 19.40 over 2; 0.20 + 7.50 = 7.70 over 2.
    expect(
        &db,
        &["revenue_by_region_month"],
        REVENUE_BY_REGION_MONTH,
        &[
            "2026-06,Casablanca-Settat,2,3.000000,1.50",
            "2026-06,Oriental,1,1.000000,1.00",
            "2026-06,Rabat-Sale-Kenitra,2,10.500000,5.25",
            "2026-07,Casablanca-Settat,2,5.600000,2.80",
            "2026-07,Oriental,1,5.200000,5.20",
            "2026-07,Rabat-Sale-Kenitra,1,31.000000,31.00",
            "2026-08,Casablanca-Settat,2,24.300000,12.15",
            "2026-08,Oriental,1,1.900000,1.90",
            "2026-08,Rabat-Sale-Kenitra,1,2.200000,2.20",
            "2026-09,Casablanca-Settat,2,19.400000,9.70",
            "2026-09,Oriental,2,7.700000,3.85",
        ],
    );
    // Data of basic customers: only customer 5's 05 (June) and 13 (July).
    expect(
        &db,
        &[
            "revenue_by_region_month",
            "--plan",
            "basic",
            "--service",
            "data",
        ],
        REVENUE_BY_REGION_MONTH,
        &[
            "2026-06,Rabat-Sale-Kenitra,1,2.000000,2.00",
            "2026-07,Rabat-Sale-Kenitra,1,3.000000,3.00",
        ],
    );
    expect(
        &db,
        &["revenue_by_region_month", "--period", "2026-08"],
        REVENUE_BY_REGION_MONTH,
        &[
            "2026-08,Casablanca-Settat,2,24.300000,12.15",
            "2026-08,Oriental,1,1.900000,1.90",
            "2026-08,Rabat-Sale-Kenitra,1,2.200000,2.20",
        ],
    );
}

/// revenue_by_service, revenue_by_region, revenue_by_plan, top_customers and
/// service_profitability: one month's breakdowns, ranked by revenue.
#[tokio::test(flavor = "multi_thread")]
async fn breakdowns_of_one_month_rank_by_revenue_with_shares_that_add_up() {
    let db = dataset().await;

    // September by service: data 20 + 25 = 14.00 (cost 1.40, 90 % margin), 51.661 % of
    // 27.10; voice 21 + 23 + 26 = 12.70 (cost 0.84 + 0.36 + 2.00 = 3.20, margin 9.50 =
    // 74.803 %), 46.863 %; SMS 22 + 24 = 0.40, 1.476 %. Units: 102400 + 40960; 420 + 180
    // + 60; 1 + 1.
    expect(
        &db,
        &["revenue_by_service"],
        REVENUE_BY_SERVICE,
        &[
            "data,2,2,143360,14.000000,1.400000,12.600000,90.00,51.66",
            "voice,3,3,660,12.700000,3.200000,9.500000,74.80,46.86",
            "sms,2,2,2,0.400000,0.100000,0.300000,75.00,1.48",
        ],
    );
    // June, basic customers (2 and 5): voice 04 = 7.00 (margin 3.00: 42.857 %), 76.087 %
    // of 9.20; data 05 = 2.00, 21.739 %; SMS 02 = 0.20, 2.174 %.
    expect(
        &db,
        &[
            "revenue_by_service",
            "--period",
            "2026-06",
            "--plan",
            "basic",
        ],
        REVENUE_BY_SERVICE,
        &[
            "voice,1,1,120,7.000000,4.000000,3.000000,42.86,76.09",
            "data,1,1,20480,2.000000,0.200000,1.800000,90.00,21.74",
            "sms,1,1,1,0.200000,0.050000,0.150000,75.00,2.17",
        ],
    );
    // August in Rabat-Sale-Kenitra: customer 6's 18 (2.00 of 2.20: 90.909 %) and 19.
    expect(
        &db,
        &[
            "revenue_by_service",
            "--period",
            "2026-08",
            "--region",
            "Rabat-Sale-Kenitra",
        ],
        REVENUE_BY_SERVICE,
        &[
            "data,1,1,20480,2.000000,0.200000,1.800000,90.00,90.91",
            "sms,1,1,1,0.200000,0.050000,0.150000,75.00,9.09",
        ],
    );

    // September by home region: Casablanca-Settat 16.60 (customer 1) + 2.80 (2) = 19.40,
    // ARPU 9.70, 71.587 % of 27.10; Oriental 0.20 (3) + 7.50 (4) = 7.70, 3.85, 28.413 %.
    // Rabat-Sale-Kenitra has no September usage, so no row. No invoices yet.
    expect(
        &db,
        &["revenue_by_region"],
        REVENUE_BY_REGION,
        &[
            "Casablanca-Settat,2,4,19.400000,9.70,71.59,0,",
            "Oriental,2,3,7.700000,3.85,28.41,0,",
        ],
    );
    // July of 41.80: Rabat-Sale-Kenitra 31.00 (74.163 %, invoice 2), Casablanca-Settat
    // 5.60 (13.397 %, invoice 1), Oriental 5.20 (12.440 %, invoice 3).
    expect(
        &db,
        &["revenue_by_region", "--period", "2026-07"],
        REVENUE_BY_REGION,
        &[
            "Rabat-Sale-Kenitra,1,3,31.000000,31.00,74.16,1,39.00",
            "Casablanca-Settat,2,2,5.600000,2.80,13.40,1,2.20",
            "Oriental,1,2,5.200000,5.20,12.44,1,200.20",
        ],
    );
    // July voice of 33.60: 11 + 12 = 28.00 (83.333 %, invoice 2's voice line), 07 + 08 =
    // 5.60 (16.667 %, invoice 1's). Oriental made no July call.
    expect(
        &db,
        &[
            "revenue_by_region",
            "--period",
            "2026-07",
            "--service",
            "voice",
        ],
        REVENUE_BY_REGION,
        &[
            "Rabat-Sale-Kenitra,1,2,28.000000,28.00,83.33,1,28.00",
            "Casablanca-Settat,2,2,5.600000,2.80,16.67,1,1.00",
        ],
    );
    // September business customers, of 24.10: customer 1's 16.60 (68.880 %), customer
    // 4's 7.50 (31.120 %).
    expect(
        &db,
        &["revenue_by_region", "--plan", "business"],
        REVENUE_BY_REGION,
        &[
            "Casablanca-Settat,1,3,16.600000,16.60,68.88,0,",
            "Oriental,1,2,7.500000,7.50,31.12,0,",
        ],
    );

    // September by plan: business 16.60 + 7.50 = 24.10 over 2 (5 events); basic 2.80 +
    // 0.20 = 3.00 over 2.
    expect(
        &db,
        &["revenue_by_plan"],
        REVENUE_BY_PLAN,
        &[
            "business,2,5,24.100000,12.05,0,",
            "basic,2,2,3.000000,1.50,0,",
        ],
    );
    // July: basic 1.00 + 31.00 = 32.00 (invoices 1 and 2: 2.20 + 39.00), business 4.60 +
    // 5.20 = 9.80 (invoice 3).
    expect(
        &db,
        &["revenue_by_plan", "--period", "2026-07"],
        REVENUE_BY_PLAN,
        &[
            "basic,2,4,32.000000,16.00,2,41.20",
            "business,2,3,9.800000,4.90,1,200.20",
        ],
    );
    // July in Casablanca-Settat: customer 1 (business, 07) and 2 (basic, 08, invoice 1).
    expect(
        &db,
        &[
            "revenue_by_plan",
            "--period",
            "2026-07",
            "--region",
            "Casablanca-Settat",
        ],
        REVENUE_BY_PLAN,
        &[
            "business,1,1,4.600000,4.60,0,",
            "basic,1,1,1.000000,1.00,1,2.20",
        ],
    );
    // July data: business 10 (5.00; invoice 3 billed 5.00 and credited 5.00 of its data
    // allowance), basic 13 (3.00; invoice 2's data line).
    expect(
        &db,
        &[
            "revenue_by_plan",
            "--period",
            "2026-07",
            "--service",
            "data",
        ],
        REVENUE_BY_PLAN,
        &[
            "business,1,1,5.000000,5.00,1,0.00",
            "basic,1,1,3.000000,3.00,1,3.00",
        ],
    );

    // September's customers by rated: 1 (20 + 21 + 22 = 16.60, cost 1.89), 4 (25 + 26 =
    // 7.50, cost 2.40), 2 (23), 3 (24). An E.164 number is text that starts with `+`, so
    // CSV writes it with a leading `'`: a spreadsheet shows it as written, not as a sum.
    let top = [
        "1,Amina Alaoui,'+212600000001,Casablanca-Settat,business,3,16.600000,1.890000",
        "4,Driss Doukkali,'+212600000004,Oriental,business,2,7.500000,2.400000",
        "2,Brahim Bennani,'+212600000002,Casablanca-Settat,basic,1,2.800000,0.360000",
        "3,Chaima Chraibi,'+212600000003,Oriental,basic,1,0.200000,0.050000",
    ];
    expect(&db, &["top_customers"], TOP_CUSTOMERS, &top);
    expect(
        &db,
        &["top_customers", "--limit", "2"],
        TOP_CUSTOMERS,
        &top[..2],
    );
    // September SMS: customers 1 (22) and 3 (24) tie at 0.20: by customer id.
    expect(
        &db,
        &["top_customers", "--service", "sms"],
        TOP_CUSTOMERS,
        &[
            "1,Amina Alaoui,'+212600000001,Casablanca-Settat,business,1,0.200000,0.050000",
            "3,Chaima Chraibi,'+212600000003,Oriental,basic,1,0.200000,0.050000",
        ],
    );
    // June basic: customer 5 (04 + 05 = 9.00, cost 4.20), customer 2 (02).
    expect(
        &db,
        &["top_customers", "--period", "2026-06", "--plan", "basic"],
        TOP_CUSTOMERS,
        &[
            "5,Fatima Fassi,'+212600000005,Rabat-Sale-Kenitra,basic,2,9.000000,4.200000",
            "2,Brahim Bennani,'+212600000002,Casablanca-Settat,basic,1,0.200000,0.050000",
        ],
    );
    expect(
        &db,
        &[
            "top_customers",
            "--period",
            "2026-07",
            "--region",
            "Oriental",
        ],
        TOP_CUSTOMERS,
        &["4,Driss Doukkali,'+212600000004,Oriental,business,2,5.200000,0.550000"],
    );

    // September by service and zone, services in order and zones by revenue: data
    // domestic 20 + 25; SMS domestic 22 + 24; voice domestic 21 + 23 = 9.20 (cost 0.84 +
    // 0.36 = 1.20, margin 8.00: 86.957 %); voice intl-europe 26 = 3.50 (margin 1.50:
    // 42.857 %).
    expect(
        &db,
        &["service_profitability"],
        SERVICE_PROFITABILITY,
        &[
            "data,domestic,2,143360,14.000000,1.400000,12.600000,90.00",
            "sms,domestic,2,2,0.400000,0.100000,0.300000,75.00",
            "voice,domestic,2,600,9.200000,1.200000,8.000000,86.96",
            "voice,intl-europe,1,60,3.500000,2.000000,1.500000,42.86",
        ],
    );
    // Business customers only (1 and 4): voice domestic is 21 alone, 6.40 − 0.84 = 5.56,
    // 86.875 % rounded half away from zero to 86.88.
    expect(
        &db,
        &["service_profitability", "--plan", "business"],
        SERVICE_PROFITABILITY,
        &[
            "data,domestic,2,143360,14.000000,1.400000,12.600000,90.00",
            "sms,domestic,1,1,0.200000,0.050000,0.150000,75.00",
            "voice,domestic,1,420,6.400000,0.840000,5.560000,86.88",
            "voice,intl-europe,1,60,3.500000,2.000000,1.500000,42.86",
        ],
    );
    expect(
        &db,
        &[
            "service_profitability",
            "--period",
            "2026-07",
            "--region",
            "Rabat-Sale-Kenitra",
        ],
        SERVICE_PROFITABILITY,
        &[
            "data,domestic,1,30720,3.000000,0.300000,2.700000,90.00",
            "voice,intl-europe,2,420,28.000000,14.000000,14.000000,50.00",
        ],
    );
}

/// RFM over July to September (the latest month) and June to August: recency in whole
/// days to the end of the month in Casablanca (30 September 23:00 UTC, 31 August 23:00
/// UTC), quintile scores 1 + floor(5 × percent_rank) capped at 5 over the 7 customers
/// activated by the month's end (customer 8 came in October), so rank 1..7 score
/// 1, 1, 2, 3, 4, 5, 5 and ties take the first rank's score.
#[tokio::test(flavor = "multi_thread")]
async fn rfm_scores_customers_by_rank_with_ties_and_no_usage_and_names_their_segments() {
    let db = dataset().await;

    // September window (July to September):
    //   customer  last event (UTC)   recency  frequency  monetary
    //   1         09-30 20:00        0 (3 h)  6          4.60 + 4.10 + 20.00 + 10.00 + 6.40 + 0.20 = 45.30
    //   2         09-18 09:00        12       3          1.00 + 0.20 + 2.80 = 4.00
    //   3         09-27 23:30        2 (2 d 23.5 h; 3 if the month ended at midnight UTC)
    //                                         1          0.20
    //   4         09-18 20:00        12       5          0.20 + 5.00 + 1.90 + 4.00 + 3.50 = 14.60
    //   5         07-20 12:00        72       3          16.00 + 12.00 + 3.00 = 31.00
    //   6         08-16 10:00        45       2          2.00 + 0.20 = 2.20
    //   7         none (its one event is unrated)   0   0
    // r, worst first: 7 (none) rank 1 → 1; 5 rank 2 → 1; 6 rank 3 → 2; 2 and 4 tie at
    //   rank 4 → 3; 3 rank 6 → 5; 1 rank 7 → 5.
    // f: 7 → 1; 3 → 1; 6 → 2; 2 and 5 tie at rank 4 → 3; 4 rank 6 → 5; 1 → 5.
    // m: 7 → 1; 3 → 1; 6 → 2; 2 → 3; 4 → 4; 5 → 5; 1 → 5.
    // Segments: 1 555 champions; 5 135 at risk (r ≤ 2, f ≥ 3); 4 354 loyal (f ≥ 4,
    // m ≥ 3, r < 4); 2 333 promising (r ≥ 3); 6 222 hibernating (r ≤ 2, f = 2); 3 511 new
    // (r ≥ 4, f ≤ 2); 7 111 lost. Rows by monetary.
    let september = [
        "1,Amina Alaoui,Casablanca-Settat,business,2026-09-30T20:00:00Z,0,6,45.300000,5,5,5,555,champions",
        "5,Fatima Fassi,Rabat-Sale-Kenitra,basic,2026-07-20T12:00:00Z,72,3,31.000000,1,3,5,135,at risk",
        "4,Driss Doukkali,Oriental,business,2026-09-18T20:00:00Z,12,5,14.600000,3,5,4,354,loyal",
        "2,Brahim Bennani,Casablanca-Settat,basic,2026-09-18T09:00:00Z,12,3,4.000000,3,3,3,333,promising",
        "6,Hamid Haddad,Rabat-Sale-Kenitra,business,2026-08-16T10:00:00Z,45,2,2.200000,2,2,2,222,hibernating",
        "3,Chaima Chraibi,Oriental,basic,2026-09-27T23:30:00Z,2,1,0.200000,5,1,1,511,new",
        "7,Imane Idrissi,unknown,basic,,,0,0,1,1,1,111,lost",
    ];
    expect(&db, &["rfm"], RFM, &september);
    expect(&db, &["rfm", "--limit", "2"], RFM, &september[..2]);
    // A filter picks rows; the scores stay those over all the month's customers.
    expect(
        &db,
        &["rfm", "--plan", "business"],
        RFM,
        &[september[0], september[2], september[4]],
    );
    expect(&db, &["rfm", "--region", "unknown"], RFM, &[september[6]]);

    // August window (June to August), 7 customers again (3 was activated on 20 August):
    //   customer  last event (UTC)   recency  frequency  monetary
    //   1         08-12 10:00        19       4          2.80 + 4.60 + 4.10 + 20.00 = 31.50
    //   2         08-14 08:30        17       3          0.20 + 1.00 + 0.20 = 1.40
    //   3, 7      none               -        0          0
    //   4         08-20 13:00        11       4          1.00 + 0.20 + 5.00 + 1.90 = 8.10
    //   5         07-20 12:00        42       5          7.00 + 2.00 + 16.00 + 12.00 + 3.00 = 40.00
    //   6         08-16 10:00        15       3          1.50 + 2.00 + 0.20 = 3.70
    // r: 3 and 7 tie at rank 1 → 1; 5 rank 3 → 2; 1 rank 4 → 3; 2 rank 5 → 4; 6 → 5; 4 → 5.
    // f: 3, 7 → 1; 2 and 6 tie at rank 3 → 2; 1 and 4 tie at rank 5 → 4; 5 rank 7 → 5.
    // m: 3, 7 → 1; 2 rank 3 → 2; 6 rank 4 → 3; 4 → 4; 1 → 5; 5 → 5.
    // Segments: 1 345 loyal; 2 422 new; 4 544 champions; 5 255 loyal; 6 523 new; 3 and 7
    // 111 lost.
    expect(
        &db,
        &["rfm", "--period", "2026-08", "--region", "Rabat-Sale-Kenitra"],
        RFM,
        &[
            "5,Fatima Fassi,Rabat-Sale-Kenitra,basic,2026-07-20T12:00:00Z,42,5,40.000000,2,5,5,255,loyal",
            "6,Hamid Haddad,Rabat-Sale-Kenitra,business,2026-08-16T10:00:00Z,15,3,3.700000,5,2,3,523,new",
        ],
    );

    // September: one customer per segment, 1/7 = 14.29 % each, by monetary. The lost
    // customer has no recency to average.
    expect(
        &db,
        &["rfm_segments"],
        RFM_SEGMENTS,
        &[
            "champions,1,14.29,0.0,6.0,45.30,45.300000",
            "at risk,1,14.29,72.0,3.0,31.00,31.000000",
            "loyal,1,14.29,12.0,5.0,14.60,14.600000",
            "promising,1,14.29,12.0,3.0,4.00,4.000000",
            "hibernating,1,14.29,45.0,2.0,2.20,2.200000",
            "new,1,14.29,2.0,1.0,0.20,0.200000",
            "lost,1,14.29,,0.0,0.00,0",
        ],
    );
    // August: loyal 1 and 5 (recency (19 + 42) / 2 = 30.5, frequency 4.5, monetary 31.50
    // + 40.00 = 71.50, 35.75 on average); champions 4; new 2 and 6 ((17 + 15) / 2 = 16.0,
    // 3.0, 1.40 + 3.70 = 5.10, 2.55); lost 3 and 7. 2/7 = 28.57 %.
    expect(
        &db,
        &["rfm_segments", "--period", "2026-08"],
        RFM_SEGMENTS,
        &[
            "loyal,2,28.57,30.5,4.5,35.75,71.500000",
            "champions,1,14.29,11.0,4.0,8.10,8.100000",
            "new,2,28.57,16.0,3.0,2.55,5.100000",
            "lost,2,28.57,,0.0,0.00,0",
        ],
    );
    // August's basic customers: 5 loyal, 2 new, 3 and 7 lost.
    expect(
        &db,
        &["rfm_segments", "--period", "2026-08", "--plan", "basic"],
        RFM_SEGMENTS,
        &[
            "loyal,1,25.00,42.0,5.0,40.00,40.000000",
            "new,1,25.00,17.0,3.0,1.40,1.400000",
            "lost,2,50.00,,0.0,0.00,0",
        ],
    );
    // September in Casablanca-Settat: customers 1 and 2; customer 8 (activated in
    // October) is in no September segment.
    expect(
        &db,
        &["rfm_segments", "--region", "Casablanca-Settat"],
        RFM_SEGMENTS,
        &[
            "champions,1,50.00,0.0,6.0,45.30,45.300000",
            "promising,1,50.00,12.0,3.0,4.00,4.000000",
        ],
    );
}

/// usage_by_hour and usage_by_technology: weekdays and hours are Casablanca's.
#[tokio::test(flavor = "multi_thread")]
async fn usage_is_counted_by_weekday_and_hour_in_the_operators_time_zone_and_by_technology() {
    let db = dataset().await;

    // September, local time (UTC+1): 20 is Monday 7th 00:30 and 24 Monday 28th 00:30
    // (both Sunday 23:30 in UTC); 25 Wednesday 2nd 08:45; 22 Wednesday 30th 21:00; 21
    // and 23 Friday 18th 10:30 and 10:00; 26 Friday 18th 21:00.
    expect(
        &db,
        &["usage_by_hour"],
        USAGE_BY_HOUR,
        &[
            "1,0,2,102401,10.200000",
            "3,8,1,40960,4.000000",
            "3,21,1,1,0.200000",
            "5,10,2,600,9.200000",
            "5,21,1,60,3.500000",
        ],
    );
    expect(
        &db,
        &["usage_by_hour", "--service", "voice"],
        USAGE_BY_HOUR,
        &["5,10,2,600,9.200000", "5,21,1,60,3.500000"],
    );
    // August, home region Casablanca-Settat (customers 1 and 2): 15 Wednesday 12th 11:00
    // (made in Oriental, counted at home), 16 Friday 14th 09:30, 14 Saturday 1st 00:30.
    expect(
        &db,
        &[
            "usage_by_hour",
            "--period",
            "2026-08",
            "--region",
            "Casablanca-Settat",
        ],
        USAGE_BY_HOUR,
        &[
            "3,11,1,300,20.000000",
            "5,9,1,1,0.200000",
            "6,0,1,600,4.100000",
        ],
    );

    // September: 4G 23, 24, 25, 26 (units 180 + 1 + 40960 + 60, rated 2.80 + 0.20 + 4.00 +
    // 3.50), 4 of 7 events = 57.14 %; 5G 20, 21, 22 (102400 + 420 + 1; 10.00 + 6.40 +
    // 0.20), 42.86 %. The share is of events.
    expect(
        &db,
        &["usage_by_technology"],
        USAGE_BY_TECHNOLOGY,
        &["4G,4,41201,10.500000,57.14", "5G,3,102821,16.600000,42.86"],
    );
    expect(
        &db,
        &["usage_by_technology", "--service", "data"],
        USAGE_BY_TECHNOLOGY,
        &["4G,1,40960,4.000000,50.00", "5G,1,102400,10.000000,50.00"],
    );
    expect(
        &db,
        &[
            "usage_by_technology",
            "--period",
            "2026-07",
            "--region",
            "Rabat-Sale-Kenitra",
        ],
        USAGE_BY_TECHNOLOGY,
        &["4G,2,420,28.000000,66.67", "3G,1,30720,3.000000,33.33"],
    );
}

/// data_quality and rejects_by_reason count per processing day in Casablanca;
/// late_usage per usage month, billed or still owed.
#[tokio::test(flavor = "multi_thread")]
async fn pipeline_reports_count_processing_days_rejects_and_late_usage() {
    let db = dataset().await;

    // 20 August: 30 records, 1 rejected (3.33 %). 31 August 23:15 UTC is 1 September:
    // 20, 5 rejected (25 %), 2 unverified peers. 10 September: 100 + 50 = 150, 90 + 48
    // accepted, 4 + 1 unverified peers, 5 + 2 rejected (4.67 %); 23:30 UTC is the 11th:
    // 40 + 10 = 50, 0 + 3 unverified peers, 2 rejected (4 %).
    let days = [
        "2026-08-20,30,28,0,1,0,1,3.33",
        "2026-09-01,20,15,2,0,0,5,25.00",
        "2026-09-10,150,138,5,3,2,7,4.67",
        "2026-09-11,50,46,3,1,1,2,4.00",
    ];
    expect(&db, &["data_quality"], DATA_QUALITY, &days);
    expect(
        &db,
        &["data_quality", "--period", "2026-08"],
        DATA_QUALITY,
        &days[..1],
    );
    expect(
        &db,
        &["data_quality", "--period", "2026-09"],
        DATA_QUALITY,
        &days[1..],
    );

    // Six rejects: malformed_number 3 (50 %), missing_field 2 (33.33 %),
    // future_timestamp 1 (16.67 %). In September (Casablanca days): the three malformed
    // numbers (one at 23:30 UTC on the 10th), the future timestamp of 31 August 23:15 UTC,
    // one missing field; August keeps one missing field.
    expect(
        &db,
        &["rejects_by_reason"],
        REJECTS_BY_REASON,
        &[
            "malformed_number,3,50.00",
            "missing_field,2,33.33",
            "future_timestamp,1,16.67",
        ],
    );
    expect(
        &db,
        &["rejects_by_reason", "--period", "2026-09"],
        REJECTS_BY_REASON,
        &[
            "malformed_number,3,60.00",
            "future_timestamp,1,20.00",
            "missing_field,1,20.00",
        ],
    );
    expect(
        &db,
        &["rejects_by_reason", "--period", "2026-08"],
        REJECTS_BY_REASON,
        &["missing_field,1,100.00"],
    );

    // Late usage, the re-rating left out. June: 0.20 (billed on invoice 1) + 7.00
    // (invoice 2) + 1.50 (owed) = 8.70. July: 5.00 (invoice 4) + 3.00 (owed) = 8.00.
    expect(
        &db,
        &["late_usage"],
        LATE_USAGE,
        &[
            "2026-06,3,8.700000,2,7.200000,1,1.500000",
            "2026-07,2,8.000000,1,5.000000,1,3.000000",
        ],
    );
    expect(
        &db,
        &["late_usage", "--period", "2026-07"],
        LATE_USAGE,
        &["2026-07,2,8.000000,1,5.000000,1,3.000000"],
    );
    // Rabat-Sale-Kenitra: customers 5 (7.00 billed, 3.00 owed) and 6 (1.50 owed).
    expect(
        &db,
        &["late_usage", "--region", "Rabat-Sale-Kenitra"],
        LATE_USAGE,
        &[
            "2026-06,2,8.500000,1,7.000000,1,1.500000",
            "2026-07,1,3.000000,0,0,1,3.000000",
        ],
    );
    // Business: customer 6's 1.50 owed, customer 4's 5.00 billed.
    expect(
        &db,
        &["late_usage", "--plan", "business"],
        LATE_USAGE,
        &[
            "2026-06,1,1.500000,0,0,1,1.500000",
            "2026-07,1,5.000000,1,5.000000,0,0",
        ],
    );
}

/// Without `--period`, a *latest* report answers for September, the latest month with
/// usage; the others list every month (or day) they have.
#[tokio::test(flavor = "multi_thread")]
async fn latest_reports_default_to_the_latest_month_with_usage() {
    let db = dataset().await;
    for r in REPORTS {
        let default = csv(&db, &[r.name]);
        let september = csv(&db, &[r.name, "--period", "2026-09"]);
        let july = csv(&db, &[r.name, "--period", "2026-07"]);
        if r.latest {
            assert_eq!(default, september, "{} without --period", r.name);
        } else {
            assert_ne!(default, september, "{} without --period", r.name);
        }
        // Every report says something about July that differs from September, so the
        // comparison above could tell a wrong default.
        assert_ne!(july, september, "{}", r.name);
    }
}

/// The aggregates hold what the last refresh saw; late_usage reads its small table live.
#[tokio::test(flavor = "multi_thread")]
async fn reports_are_as_fresh_as_the_last_refresh_and_report_refresh_brings_them_up_to_date() {
    let db = dataset().await;
    let client = db.client().await;
    let before: Value = serde_json::from_str(&json_of(&db, &["kpis"])).unwrap();
    // One more September call of customer 2 (1.00, cost 0.12) and one more late event of
    // customer 1 in August, owed.
    client
        .batch_execute(
            "INSERT INTO usage_events (record_id, customer_id, msisdn, record_type, event_time,
                 period, zone, band, units, amount, cost, technology, region, cell_id,
                 src_topic, src_partition, src_offset)
             VALUES ('rpt-28', 2, '+212600000002', 'voice', '2026-09-20 10:00Z', '2026-09-01',
                 'domestic', 'weekend', 60, 1.000000, 0.120000, '4G', 'Casablanca-Settat',
                 'cell-28', 'cdr.raw.reports', 0, 28);
             INSERT INTO rating_adjustments (record_id, customer_id, period, catalog_version,
                 old_amount, new_amount, delta, in_place, kind)
             VALUES ('rpt-15', 1, '2026-08-01', (SELECT max(version) FROM catalog_versions),
                 0, 2.000000, 2.000000, false, 'late');",
        )
        .await
        .unwrap();
    expect(
        &db,
        &["kpis"],
        KPIS,
        &["2026-09,27.100000,4.700000,4,7,0,,,,250,15,6.00"],
    );
    expect(
        &db,
        &["late_usage", "--period", "2026-08"],
        LATE_USAGE,
        &["2026-08,1,2.000000,0,0,1,2.000000"],
    );
    // refreshed_at is shown to the second: let the next refresh fall in another one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // --refresh recomputes in the catalog's zone, then answers: 27.10 + 1.00, 4.70 + 0.12.
    let (code, out, err) = cdrflow(&[
        "report",
        "kpis",
        "--refresh",
        "--format",
        "csv",
        "--database-url",
        &db.url,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Report aggregates refreshed in "), "{err}");
    assert_eq!(
        out,
        format!("{KPIS}\n2026-09,28.100000,4.820000,4,8,0,,,,250,15,6.00\n")
    );
    let after: Value = serde_json::from_str(&json_of(&db, &["kpis"])).unwrap();
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["refreshed_at"].as_str().unwrap()).unwrap()
    };
    assert!(at(&after) > at(&before), "{before} then {after}");
    // The weekday and hour of the new call are still Casablanca's (Sunday 11:00).
    let hours = csv(&db, &["usage_by_hour", "--service", "voice"]);
    assert_eq!(
        hours,
        format!("{USAGE_BY_HOUR}\n5,10,2,600,9.200000\n5,21,1,60,3.500000\n7,11,1,60,1.000000\n")
    );
}

/// `cdrflow report ARGS --format json`: its standard output.
fn json_of(db: &TestDb, args: &[&str]) -> String {
    let mut all = vec!["report"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json", "--database-url", &db.url]);
    let (code, out, err) = cdrflow(&all);
    assert_eq!(code, 0, "cdrflow report {}: {err}", args.join(" "));
    out
}

/// A text table as `cdrflow report` prints it: (title, column names, cells, footer).
/// Columns are where the dashes under the header are; cells are trimmed.
fn parse_table(text: &str) -> (String, Vec<String>, Vec<Vec<String>>, String) {
    let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
    assert!(lines.len() >= 4, "not a report table:\n{text}");
    let mut spans = Vec::new();
    let dashes = &lines[2];
    let mut i = 0;
    while i < dashes.len() {
        if dashes[i] == '-' {
            let start = i;
            while i < dashes.len() && dashes[i] == '-' {
                i += 1;
            }
            spans.push((start, i));
        } else {
            assert_eq!(dashes[i], ' ', "the dash line:\n{text}");
            i += 1;
        }
    }
    let cut = |line: &[char]| -> Vec<String> {
        spans
            .iter()
            .map(|&(a, b)| {
                let a = a.min(line.len());
                let b = b.min(line.len());
                line[a..b].iter().collect::<String>().trim().to_string()
            })
            .collect()
    };
    let text_of = |line: &[char]| line.iter().collect::<String>();
    (
        text_of(&lines[0]),
        cut(&lines[1]),
        lines[3..lines.len() - 1].iter().map(|l| cut(l)).collect(),
        text_of(&lines[lines.len() - 1]),
    )
}

/// A JSON cell as the text CSV and the table show: integers as digits, null as nothing.
fn json_cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => panic!("a report cell is a string, an integer or null, not {other}"),
    }
}

/// Table, CSV and JSON of one report carry the same columns and cells, except that CSV
/// writes formula-like text with a leading `'`; JSON keeps integers as numbers and money
/// as strings; `--output FILE` writes what stdout shows.
#[tokio::test(flavor = "multi_thread")]
async fn table_csv_and_json_carry_the_same_cells_and_output_files_the_same_bytes() {
    let db = dataset().await;
    let cases: &[(&[&str], &[(&str, &str)])] = &[
        (
            &["kpis", "--period", "2026-07"],
            &[
                ("period", "period"),
                ("rated", "decimal"),
                ("cost", "decimal"),
                ("customers", "integer"),
                ("events", "integer"),
                ("invoices", "integer"),
                ("billed", "decimal"),
                ("billed_total", "decimal"),
                ("average_invoice", "decimal"),
                ("records_consumed", "integer"),
                ("records_rejected", "integer"),
                ("reject_rate_pct", "decimal"),
            ],
        ),
        (
            &["rfm"],
            &[
                ("customer_id", "integer"),
                ("name", "text"),
                ("region", "text"),
                ("plan", "text"),
                ("last_event", "timestamp"),
                ("recency_days", "integer"),
                ("frequency", "integer"),
                ("monetary", "decimal"),
                ("r", "integer"),
                ("f", "integer"),
                ("m", "integer"),
                ("rfm", "text"),
                ("segment", "text"),
            ],
        ),
        (
            &["revenue_by_month", "--service", "sms"],
            &[
                ("period", "period"),
                ("customers", "integer"),
                ("events", "integer"),
                ("rated", "decimal"),
                ("cost", "decimal"),
                ("margin", "decimal"),
                ("margin_pct", "decimal"),
                ("invoices", "integer"),
                ("billed", "decimal"),
                ("billed_total", "decimal"),
            ],
        ),
        (
            &["data_quality"],
            &[
                ("day", "date"),
                ("consumed", "integer"),
                ("accepted", "integer"),
                ("unverified_peers", "integer"),
                ("duplicates", "integer"),
                ("suspense", "integer"),
                ("rejected", "integer"),
                ("reject_rate_pct", "decimal"),
            ],
        ),
        (
            &[
                "top_customers",
                "--region",
                "Casablanca-Settat",
                "--limit",
                "2",
            ],
            &[
                ("customer_id", "integer"),
                ("name", "text"),
                ("msisdn", "text"),
                ("region", "text"),
                ("plan", "text"),
                ("events", "integer"),
                ("rated", "decimal"),
                ("cost", "decimal"),
            ],
        ),
    ];
    let dir = tempdir();
    let mut neutralized = 0;
    for (args, columns) in cases {
        let name = args[0];
        let report = REPORTS.iter().find(|r| r.name == name).unwrap();
        let run = |format: &str, output: Option<&std::path::Path>| {
            let mut all = vec!["report"];
            all.extend_from_slice(args);
            let path = output.map(|p| p.display().to_string());
            all.extend_from_slice(&["--format", format, "--database-url", &db.url]);
            if let Some(p) = &path {
                all.extend_from_slice(&["--output", p.as_str()]);
            }
            let (code, out, err) = cdrflow(&all);
            assert_eq!(code, 0, "{all:?}: {err}");
            (out, err)
        };
        let (table, _) = run("table", None);
        let (csv_text, _) = run("csv", None);
        let (json_text, _) = run("json", None);
        for (format, stdout) in [("table", &table), ("csv", &csv_text), ("json", &json_text)] {
            let file = dir.join(format!("{name}.{format}"));
            let (out, err) = run(format, Some(&file));
            assert_eq!(out, "", "{name} --output writes nothing to stdout");
            let bytes = std::fs::read(&file).unwrap();
            assert_eq!(
                bytes,
                stdout.as_bytes(),
                "{name} --format {format} --output"
            );
            assert!(
                err.contains(&format!(
                    "Wrote {} ({} bytes).",
                    file.display(),
                    bytes.len()
                )),
                "{err}"
            );
        }

        let json: Value = serde_json::from_str(&json_text).unwrap();
        assert_eq!(json["report"], name);
        assert_eq!(json["title"], report.title);
        let given: BTreeMap<String, Value> = args[1..]
            .chunks(2)
            .map(|kv| (kv[0].trim_start_matches("--").to_string(), json!(kv[1])))
            .collect();
        assert_eq!(json["filters"], json!(given), "{name}");
        let types: Vec<(String, String)> = json["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = columns
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(types, want, "{name} columns");
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let rows = json["rows"].as_array().unwrap();
        assert!(!rows.is_empty(), "{name} has rows");
        let mut json_cells = Vec::new();
        for row in rows {
            let object = row.as_object().unwrap();
            assert_eq!(object.len(), names.len(), "{name}: {row}");
            let mut cells = Vec::new();
            for (column, kind) in columns.iter() {
                let v = &object[*column];
                match (*kind, v) {
                    (_, Value::Null) => {}
                    ("integer", v) => assert!(v.is_i64(), "{name}.{column} = {v}"),
                    (_, v) => assert!(v.is_string(), "{name}.{column} = {v}"),
                }
                cells.push(json_cell_text(v));
            }
            json_cells.push(cells);
        }

        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, names, "{name} CSV header");
        let csv_cells: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        // CSV writes a text cell that a spreadsheet would run as a formula (`+212…` is
        // one) with a leading `'`; every other cell is the JSON one.
        let json_as_csv: Vec<Vec<String>> = json_cells
            .iter()
            .map(|row| {
                row.iter()
                    .zip(columns.iter())
                    .map(|(cell, (_, kind))| {
                        if *kind == "text" && cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                            neutralized += 1;
                            format!("'{cell}")
                        } else {
                            cell.clone()
                        }
                    })
                    .collect()
            })
            .collect();
        assert_eq!(csv_cells, json_as_csv, "{name}: CSV and JSON");

        let (title, header, table_cells, footer) = parse_table(&table);
        let filters: Vec<String> = args[1..]
            .chunks(2)
            .map(|kv| format!("{}={}", kv[0].trim_start_matches("--"), kv[1]))
            .collect();
        let want_title = if filters.is_empty() {
            report.title.to_string()
        } else {
            format!("{} ({})", report.title, filters.join(", "))
        };
        assert_eq!(title, want_title);
        assert_eq!(header, names, "{name} table header");
        assert_eq!(table_cells, json_cells, "{name}: table and JSON");
        assert_eq!(
            footer,
            format!(
                "({} row{}; aggregates refreshed {})",
                rows.len(),
                if rows.len() == 1 { "" } else { "s" },
                json["refreshed_at"].as_str().unwrap()
            )
        );
    }
    // top_customers' two numbers of Casablanca-Settat.
    assert_eq!(neutralized, 2, "text cells written with a leading '");
}

/// A database URL nothing listens on: a request that is refused before connecting
/// never notices.
const NOWHERE: &str = "postgres://postgres@127.0.0.1:1/cdrflow_nowhere";

#[test]
fn bad_report_requests_exit_2_naming_the_problem_before_touching_the_database() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["nope"],
            "error: no report named \"nope\"; `cdrflow report --list` lists them",
        ),
        (
            &["revenue_by_region", "--region", "Oriental"],
            "error: report revenue_by_region does not filter by region; it takes: period, service, plan",
        ),
        (
            &["late_usage", "--service", "voice"],
            "error: report late_usage does not filter by service; it takes: period, region, plan",
        ),
        (
            &["kpis", "--limit", "5"],
            "error: report kpis does not filter by limit; it takes: period, service, region, plan",
        ),
        (
            &["data_quality", "--plan", "basic"],
            "error: report data_quality does not filter by plan; it takes: period",
        ),
        (
            &["kpis", "--period", "2026-13"],
            "error: period \"2026-13\" is not YYYY-MM",
        ),
        (
            &["kpis", "--period", "September"],
            "error: period \"September\" is not YYYY-MM",
        ),
        (
            &["kpis", "--service", "fax"],
            "error: service \"fax\" is not one of voice, sms, data",
        ),
        (
            &["top_customers", "--limit", "0"],
            "error: limit \"0\" is not a number in 1..=100000",
        ),
        (
            &["top_customers", "--limit", "100001"],
            "error: limit \"100001\" is not a number in 1..=100000",
        ),
        (
            &["rfm", "--limit", "ten"],
            "error: limit \"ten\" is not a number in 1..=100000",
        ),
        // clap's own refusal, with the same status.
        (&["kpis", "--format", "xml"], "'xml'"),
    ];
    for (args, message) in cases {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--database-url", NOWHERE]);
        let (code, out, err) = cdrflow(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(out, "", "{args:?}");
        assert!(err.contains(message), "{args:?}: {err}");
    }
    // The same database URL for a good request: it is tried, and fails otherwise.
    let (code, out, err) = cdrflow(&["report", "kpis", "--database-url", NOWHERE]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
}

#[test]
fn report_list_names_every_report_with_its_filters() {
    let (code, table, err) = cdrflow(&["report", "--list", "--database-url", NOWHERE]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 * REPORTS.len(), "{table}");
    for (r, pair) in REPORTS.iter().zip(lines.chunks(2)) {
        let (name, title) = pair[0].split_once("  ").unwrap();
        assert_eq!((name, title.trim()), (r.name, r.title));
        let filters: Vec<&str> = r.filters.iter().map(|f| f.as_str()).collect();
        let latest = if r.latest {
            " (without --period: the latest month with usage)"
        } else {
            ""
        };
        assert_eq!(
            pair[1].trim(),
            format!("filters: {}{latest}", filters.join(", "))
        );
    }
    // The latest-by-default ones, as the SQL has them.
    let latest: Vec<&str> = REPORTS
        .iter()
        .filter(|r| r.latest)
        .map(|r| r.name)
        .collect();
    assert_eq!(
        latest,
        [
            "kpis",
            "revenue_by_service",
            "revenue_by_region",
            "revenue_by_plan",
            "top_customers",
            "rfm",
            "rfm_segments",
            "service_profitability",
            "usage_by_hour",
            "usage_by_technology"
        ]
    );

    let (code, out, err) = cdrflow(&[
        "report",
        "--list",
        "--format",
        "json",
        "--database-url",
        NOWHERE,
    ]);
    assert_eq!(code, 0, "{err}");
    let list: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = REPORTS.iter().map(|r| r.name).collect();
    assert_eq!(names, want);
    assert_eq!(names.len(), 16);
    assert_eq!(
        list[8],
        json!({
            "name": "rfm",
            "title": "RFM scores",
            "description": REPORTS[8].description,
            "filters": ["period", "region", "plan", "limit"],
            "latest_by_default": true,
        })
    );
}

/// GET `path` on the daemon: (status, headers, body as text).
fn get(d: &Daemon, path: &str) -> (u16, BTreeMap<String, String>, String) {
    let (status, headers, body) = get_bytes(d.http_port, path);
    (status, headers, String::from_utf8(body).unwrap())
}

/// GET `path`, answered with JSON: (status, document).
fn get_json(d: &Daemon, path: &str) -> (u16, Value) {
    let (status, headers, body) = get(d, path);
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/json"),
        "GET {path}: {body}"
    );
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e} in {body}"));
    (status, v)
}

/// The daemon serves the CLI's reports (CSV byte for byte as a named download, JSON
/// equal), refuses bad requests with a JSON error, documents itself, and answers the
/// dashboard's drill-down: filters, a customer, their events, an event's explanation
/// with and without the original bytes on the broker.
#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_the_clis_reports_and_the_drill_down() {
    let db = dataset().await;
    let client = db.client().await;
    let source = topic("cdr.raw.reports", 1).await;
    // Event 24 as it was received, kept on a topic of its own; event 21 points past the
    // end of that topic, where the broker has nothing.
    let archive = topic("cdr.raw.reports-archive", 1).await;
    let payload = br#"{"record_id":"rpt-24","type":"sms","subscriber":"0600000003"}"#;
    produce_raw(&archive, 0, &[(None, payload.to_vec())]);
    client
        .execute(
            "UPDATE usage_events SET src_topic = $1, src_partition = 0,
                    src_offset = CASE record_id WHEN 'rpt-24' THEN 0 ELSE 5 END
              WHERE record_id IN ('rpt-21', 'rpt-24')",
            &[&archive],
        )
        .await
        .unwrap();
    let mut d = Daemon::start(&DaemonConfig {
        topic: &source,
        group: "reports",
        database_url: &db.url,
        idle_secs: None,
        // No refresh of its own: the answers must not move between the CLI's and the
        // API's.
        extra: ["--no-publish", "--report-refresh-secs", "0"]
            .map(String::from)
            .to_vec(),
    });
    d.wait_up();

    // The registry.
    let (status, list) = get_json(&d, "/api/reports");
    assert_eq!(status, 200);
    let listed: Vec<(&str, Vec<&str>, bool)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap(),
                r["filters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect(),
                r["latest_by_default"].as_bool().unwrap(),
            )
        })
        .collect();
    let registry: Vec<(&str, Vec<&str>, bool)> = REPORTS
        .iter()
        .map(|r| {
            (
                r.name,
                r.filters.iter().map(|f| f.as_str()).collect(),
                r.latest,
            )
        })
        .collect();
    assert_eq!(listed, registry);

    // CSV: the CLI's bytes, as a download named after the report and the filters' values.
    for (query, args, filename) in [
        ("", vec!["kpis"], "cdrflow-kpis.csv"),
        (
            "period=2026-07&service=voice",
            vec![
                "revenue_by_region",
                "--period",
                "2026-07",
                "--service",
                "voice",
            ],
            "cdrflow-revenue_by_region-2026-07-voice.csv",
        ),
        (
            "region=Casablanca-Settat&limit=2",
            vec![
                "top_customers",
                "--region",
                "Casablanca-Settat",
                "--limit",
                "2",
            ],
            "cdrflow-top_customers-Casablanca-Settat-2.csv",
        ),
        (
            "period=2026-08&region=Rabat-Sale-Kenitra",
            vec![
                "rfm",
                "--period",
                "2026-08",
                "--region",
                "Rabat-Sale-Kenitra",
            ],
            "cdrflow-rfm-2026-08-Rabat-Sale-Kenitra.csv",
        ),
    ] {
        let name = args[0];
        let sep = if query.is_empty() { "" } else { "&" };
        let path = format!("/api/reports/{name}?{query}{sep}format=csv");
        let (status, headers, body) = get(&d, &path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body, csv(&db, &args), "{path}");
        assert_eq!(
            headers.get("content-type").map(String::as_str),
            Some("text/csv; charset=utf-8")
        );
        assert_eq!(
            headers.get("content-disposition").map(String::as_str),
            Some(format!("attachment; filename=\"{filename}\"").as_str()),
            "{path}"
        );
        // JSON: the CLI's document, rows and columns and all.
        let path = format!("/api/reports/{name}?{query}");
        let (status, api) = get_json(&d, &path);
        assert_eq!(status, 200, "{path}: {api}");
        let cli: Value = serde_json::from_str(&json_of(&db, &args)).unwrap();
        assert_eq!(api, cli, "{path}");
    }
    // A hand-checked row through the API (see the breakdowns test): July voice in
    // Rabat-Sale-Kenitra, exact decimals as strings, counts as numbers.
    let (_, by_region) = get_json(
        &d,
        "/api/reports/revenue_by_region?period=2026-07&service=voice",
    );
    assert_eq!(
        by_region["rows"][0],
        json!({"region": "Rabat-Sale-Kenitra", "customers": 1, "events": 2,
               "rated": "28.000000", "arpu": "28.00", "share_pct": "83.33", "invoices": 1,
               "billed": "28.00"})
    );
    assert_eq!(
        by_region["filters"],
        json!({"period": "2026-07", "service": "voice"})
    );

    // Bad requests: 400 (404 for an unknown report) with a JSON error naming the problem.
    for (path, status, message) in [
        (
            "/api/reports/revenue_by_region?region=Oriental",
            400,
            "report revenue_by_region does not filter by region; it takes: period, service, plan",
        ),
        (
            "/api/reports/kpis?period=2026-13",
            400,
            "period \"2026-13\" is not YYYY-MM",
        ),
        (
            "/api/reports/kpis?service=fax",
            400,
            "service \"fax\" is not one of voice, sms, data",
        ),
        (
            "/api/reports/top_customers?limit=0",
            400,
            "limit \"0\" is not a number in 1..=100000",
        ),
        (
            "/api/reports/kpis?format=xml",
            400,
            "format \"xml\" is not json or csv",
        ),
        (
            "/api/reports/nope",
            404,
            "no report named \"nope\"; `cdrflow report --list` lists them",
        ),
    ] {
        let (got, body) = get_json(&d, path);
        assert_eq!((got, &body), (status, &json!({"error": message})), "{path}");
    }
    let (status, body) = get_json(&d, "/api/reports/kpis?perod=2026-09");
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `perod`"),
        "{body}"
    );

    // The OpenAPI document: a path per report, with its filters and the format.
    let (status, doc) = get_json(&d, "/api/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    for r in REPORTS {
        let op = &doc["paths"][format!("/api/reports/{}", r.name)]["get"];
        let parameters: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap_or_else(|| panic!("no path for {}", r.name))
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let mut want: Vec<&str> = r.filters.iter().map(|f| f.as_str()).collect();
        want.push("format");
        assert_eq!(parameters, want, "{}", r.name);
    }
    for path in [
        "/api/reports",
        "/api/filters",
        "/api/customers/{id}",
        "/api/customers/{id}/events",
        "/api/events/{record_id}/explain",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path}");
    }

    // What the filters can take: the months with usage (latest first), the customers'
    // regions (customer 7 has none), the catalog's plans.
    let (status, filters) = get_json(&d, "/api/filters");
    assert_eq!(status, 200);
    assert_eq!(
        filters,
        json!({
            "periods": ["2026-09", "2026-08", "2026-07", "2026-06"],
            "services": ["voice", "sms", "data"],
            "regions": ["Casablanca-Settat", "Oriental", "Rabat-Sale-Kenitra", "unknown"],
            "plans": ["basic", "business", "data-max", "student"],
        })
    );

    // A customer, and their rated events of a month, newest first.
    let (status, customer) = get_json(&d, "/api/customers/4");
    assert_eq!(status, 200);
    assert_eq!(
        customer,
        json!({"customer_id": 4, "msisdn": "+212600000004", "name": "Driss Doukkali",
               "plan": "business", "region": "Oriental", "student": false,
               "activated_on": "2025-06-01", "credit_limit": "500.00"})
    );
    let (_, customer) = get_json(&d, "/api/customers/7");
    assert_eq!(customer["region"], "unknown");
    let (status, events) = get_json(&d, "/api/customers/4/events?period=2026-09");
    assert_eq!(status, 200);
    assert_eq!(events["customer_id"], 4);
    assert_eq!(events["period"], "2026-09");
    assert_eq!(
        events["events"],
        json!([
            {"record_id": "rpt-26", "event_time": "2026-09-18T20:00:00Z", "service": "voice",
             "peer": "+33612345678", "duration_sec": 60, "volume_bytes": null,
             "zone": "intl-europe", "band": "offpeak", "units": 60, "amount": "3.500000",
             "region": "Oriental", "technology": "4G", "roaming_country": null},
            {"record_id": "rpt-25", "event_time": "2026-09-02T07:45:00Z", "service": "data",
             "peer": null, "duration_sec": null, "volume_bytes": 41943040,
             "zone": "domestic", "band": "peak", "units": 40960, "amount": "4.000000",
             "region": "Oriental", "technology": "4G", "roaming_country": null},
        ])
    );
    // Without a period: the customer's latest month with usage (July for customer 5).
    let (_, events) = get_json(&d, "/api/customers/5/events");
    assert_eq!(events["period"], "2026-07");
    let ids: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["rpt-13", "rpt-12", "rpt-11"]);
    let (_, events) = get_json(&d, "/api/customers/1/events?period=2026-08&limit=1");
    assert_eq!(events["events"].as_array().unwrap().len(), 1);
    assert_eq!(events["events"][0]["record_id"], "rpt-15");
    // Customer 7's only event is unrated: no month, no events.
    let (_, events) = get_json(&d, "/api/customers/7/events");
    assert_eq!(
        events,
        json!({"customer_id": 7, "period": null, "events": []})
    );
    for path in ["/api/customers/99", "/api/customers/99/events"] {
        let (status, body) = get_json(&d, path);
        assert_eq!(
            (status, body),
            (404, json!({"error": "no customer 99"})),
            "{path}"
        );
    }
    let (status, _) = get_json(&d, "/api/customers/4/events?period=Sept");
    assert_eq!(status, 400);

    // Event 24: the bytes as received come back from the broker, and the basic plan's
    // domestic SMS at 0.20 gives the stored amount.
    let version: i32 = client
        .query_one("SELECT max(version) FROM catalog_versions", &[])
        .await
        .unwrap()
        .get(0);
    let (status, explained) = get_json(&d, "/api/events/rpt-24/explain");
    assert_eq!(status, 200);
    assert_eq!(explained["record_id"], "rpt-24");
    assert_eq!(explained["matches"], true);
    let text = explained["text"].as_str().unwrap();
    for line in [
        "Event rpt-24\nCustomer 3 (Chaima Chraibi), +212600000003\n".to_string(),
        format!(
            "1. As received ({archive} partition 0 offset 0, broker time -):\n   {}\n",
            String::from_utf8_lossy(payload)
        ),
        "   sms by +212600000003 at 2026-09-27 23:30:00 UTC\n".to_string(),
        "   peer +212611111111 (domestic, MA)\n".to_string(),
        "   cell cell-24 → Oujda / Oriental, 4G\n".to_string(),
        format!("   catalog version {version} ("),
        "plan basic, zone domestic (domestic), billing period 2026-09\n".to_string(),
        "   1 message\n".to_string(),
        "   = the stored amount 0.200000 ✓\n".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} not in:\n{text}");
    }
    // The same text as `cdrflow explain`.
    let brokers = brokers();
    let (code, out, err) = cdrflow(&[
        "explain",
        "rpt-24",
        "--database-url",
        &db.url,
        "--brokers",
        &brokers,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, text);

    // Event 21: the broker has nothing at its offset, and it was stored at 6.40 where the
    // business plan's domestic call of 420 s at peak is 7 × 0.70 = 4.90 (SQL-made data).
    let (status, explained) = get_json(&d, "/api/events/rpt-21/explain");
    assert_eq!(status, 200);
    assert_eq!(explained["matches"], false);
    let text = explained["text"].as_str().unwrap();
    for line in [
        "   (not available: the broker no longer holds it or did not answer)\n",
        "   voice by +212600000001 at 2026-09-18 09:30:00 UTC\n",
        "   duration 420 s\n",
        "   ! the stored amount is 6.400000, not 4.900000: the catalog or plan data changed since\n",
    ] {
        assert!(text.contains(line), "{line:?} not in:\n{text}");
    }
    let (code, out, err) = cdrflow(&[
        "explain",
        "rpt-21",
        "--database-url",
        &db.url,
        "--brokers",
        &brokers,
    ]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, text);
    let (status, body) = get_json(&d, "/api/events/rpt-99/explain");
    assert_eq!(
        (status, body),
        (
            404,
            json!({"error": "no stored event has record_id \"rpt-99\""})
        )
    );

    d.stop();
}

/// The daemon refreshes the aggregates by itself every `--report-refresh-secs`, and says
/// when in its metrics and in every answer.
#[tokio::test]
async fn the_daemon_refreshes_the_reports_on_its_own() {
    let db = dataset().await;
    let source = topic("cdr.raw.reports-refresh", 1).await;
    let mut d = Daemon::start(&DaemonConfig {
        topic: &source,
        group: "reports-refresh",
        database_url: &db.url,
        idle_secs: None,
        extra: ["--no-publish", "--report-refresh-secs", "1"]
            .map(String::from)
            .to_vec(),
    });
    d.wait_up();
    let events = |d: &Daemon| -> i64 {
        let (status, body) = get_json(d, "/api/reports/kpis?period=2026-09");
        assert_eq!(status, 200, "{body}");
        body["rows"][0]["events"].as_i64().unwrap()
    };
    assert_eq!(
        events(&d),
        7,
        "September's seven events, as dataset() refreshed them"
    );
    // One more September SMS of customer 3, stored behind the aggregates' back.
    db.client()
        .await
        .batch_execute(
            "INSERT INTO usage_events (record_id, customer_id, msisdn, record_type, event_time,
                 period, zone, band, units, amount, cost, technology, region, cell_id,
                 src_topic, src_partition, src_offset)
             VALUES ('rpt-29', 3, '+212600000003', 'sms', '2026-09-21 10:00Z', '2026-09-01',
                 'domestic', 'weekend', 1, 0.200000, 0.050000, '4G', 'Oriental',
                 'cell-29', 'cdr.raw.reports', 0, 29);",
        )
        .await
        .unwrap();
    wait_for("the daemon's own refresh", Duration::from_secs(30), || {
        events(&d) == 8
    });
    let at = d
        .metric("cdrflow_report_refreshed_timestamp_seconds")
        .unwrap_or(0.0);
    assert!(
        at >= (chrono::Utc::now().timestamp() - 60) as f64,
        "refreshed at {at}"
    );
    assert!(
        d.metric("cdrflow_db_errors_total{actor=\"reporter\"}") == Some(0.0),
        "{}",
        d.log_text()
    );
    d.stop();
}
