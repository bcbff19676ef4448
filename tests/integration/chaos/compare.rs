//! The final state of one side of the chaos test as keyed rows, and a bounded diff of two
//! sides. Rows are read as JSON so that a column someone adds is compared without this
//! file knowing it. Wall-clock columns (every `*_at`) say when a run happened to write a
//! row, not what it wrote: they are compared only as set or unset. Customers are named
//! by number, not by their serial id, and group names are left out, so two databases
//! and two groups compare.

use crate::helpers::stats;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Table name → key → normalized row (JSON text).
pub type Snapshot = Vec<(&'static str, BTreeMap<String, String>)>;

/// Each query returns (key text, row jsonb); `$1` is the side's consumer group where the
/// table is kept per group.
const TABLES: &[(&str, &str)] = &[
    (
        "customers",
        "SELECT msisdn, to_jsonb(c) FROM customers c",
    ),
    (
        "usage_events",
        "SELECT u.record_id, to_jsonb(u) - 'customer_id' || jsonb_build_object('customer', c.msisdn)
           FROM usage_events u LEFT JOIN customers c USING (customer_id)",
    ),
    (
        "usage_buckets",
        "SELECT concat_ws(' ', c.msisdn, b.period, b.tariff_id, b.band, 'v' || b.catalog_version),
                to_jsonb(b) - 'customer_id'
           FROM usage_buckets b LEFT JOIN customers c USING (customer_id)",
    ),
    (
        "rejected_records",
        "SELECT concat_ws('/', r.src_topic, r.src_partition, r.src_offset),
                to_jsonb(r) - 'id' - 'raw' || jsonb_build_object('raw_md5', md5(r.raw))
           FROM rejected_records r",
    ),
    (
        "suspense_records",
        "SELECT s.record_id, to_jsonb(s) - 'raw' || jsonb_build_object('raw_md5', md5(s.raw))
           FROM suspense_records s",
    ),
    (
        "alerts",
        "SELECT concat_ws(' ', c.msisdn, a.period, a.threshold || '%'), '{}'::jsonb
           FROM alerts a LEFT JOIN customers c USING (customer_id)",
    ),
    (
        "pipeline_counters",
        "SELECT concat_ws(' ', p.topic || '/' || p.partition, p.outcome, nullif(p.reason, '')),
                to_jsonb(p) - 'group_id'
           FROM pipeline_counters p WHERE p.group_id = $1",
    ),
    (
        "consumer_offsets",
        "SELECT o.topic || '/' || o.partition, to_jsonb(o) - 'group_id'
           FROM consumer_offsets o WHERE o.group_id = $1",
    ),
    (
        "offset_gaps",
        "SELECT concat_ws('/', g.topic, g.partition, g.from_offset), to_jsonb(g) - 'group_id'
           FROM offset_gaps g WHERE g.group_id = $1",
    ),
    (
        "rating_adjustments",
        "SELECT concat_ws(' ', a.record_id, a.kind, a.period, 'v' || a.catalog_version),
                to_jsonb(a) - 'id' - 'customer_id' || jsonb_build_object('customer', c.msisdn)
           FROM rating_adjustments a LEFT JOIN customers c USING (customer_id)",
    ),
    (
        "billing_periods",
        "SELECT p.period::text, to_jsonb(p) FROM billing_periods p",
    ),
    (
        "invoices",
        "SELECT i.number,
                to_jsonb(i) - 'customer_id' - 'document'
                  || jsonb_build_object('customer', c.msisdn, 'document', i.document::jsonb)
           FROM invoices i LEFT JOIN customers c USING (customer_id)",
    ),
    (
        "invoice_lines",
        "SELECT l.number || ' #' || l.line_no, to_jsonb(l) FROM invoice_lines l",
    ),
];

/// Everything stored on one side, the `cdrflow stats` reconciliation, and the invoice
/// JSON files written by `cdrflow bill` into `invoices_dir`.
pub async fn snapshot(database_url: &str, group: &str, invoices_dir: &Path) -> Snapshot {
    let client = cdrflow::storage::connect(database_url)
        .await
        .expect("connect to read the final state");
    let mut out: Snapshot = Vec::new();
    for (table, sql) in TABLES {
        let sql = format!("SELECT k::text, v::text FROM ({sql}) AS t (k, v)");
        let rows = if sql.contains("$1") {
            client.query(&sql, &[&group]).await
        } else {
            client.query(&sql, &[]).await
        }
        .unwrap_or_else(|e| panic!("read {table}: {e}"));
        let mut keyed = BTreeMap::new();
        for row in rows {
            let key: Option<String> = row.get(0);
            let value: String = row.get(1);
            let key = key.unwrap_or_else(|| "(no key)".into());
            let value = normalized(serde_json::from_str(&value).unwrap());
            // A key seen twice would hide a row: keep both, told apart.
            let mut k = key.clone();
            let mut n = 1;
            while keyed.contains_key(&k) {
                n += 1;
                k = format!("{key} (#{n})");
            }
            keyed.insert(k, value.to_string());
        }
        out.push((*table, keyed));
    }

    let mut s = stats(database_url, group);
    s.as_object_mut().unwrap().remove("group");
    let mut keyed = BTreeMap::new();
    for (field, value) in s.as_object().unwrap() {
        match (field.as_str(), value) {
            ("partitions", Value::Array(parts)) => {
                for p in parts {
                    keyed.insert(
                        format!("partition {}/{}", p["topic"], p["partition"]),
                        normalized(p.clone()).to_string(),
                    );
                }
            }
            _ => {
                keyed.insert(field.clone(), normalized(value.clone()).to_string());
            }
        }
    }
    out.push(("stats", keyed));

    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(invoices_dir).into_iter().flatten() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let value = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => normalized(v).to_string(),
            Err(e) => format!("not JSON ({e}), {} bytes", bytes.len()),
        };
        files.insert(name, value);
    }
    out.push(("invoice files", files));
    out
}

/// `*_at` fields, at any depth, become whether they are set.
fn normalized(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    if k.ends_with("_at") {
                        let set = !v.is_null();
                        (k, Value::Bool(set))
                    } else {
                        (k, normalized(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        other => other,
    }
}

/// One table compared: row counts, and the first differing rows of each kind.
pub struct TableDiff {
    pub table: &'static str,
    pub rows: (usize, usize),
    pub only_left: (usize, Vec<String>),
    pub only_right: (usize, Vec<String>),
    pub differ: (usize, Vec<String>),
}

impl TableDiff {
    pub fn equal(&self) -> bool {
        self.only_left.0 == 0 && self.only_right.0 == 0 && self.differ.0 == 0
    }
}

/// Compare two sides table by table, keeping at most `shown` rows of each kind of
/// difference per table. `names` says what to call the two sides.
pub fn diff(
    left: &Snapshot,
    right: &Snapshot,
    shown: usize,
    names: (&str, &str),
) -> Vec<TableDiff> {
    let mut out = Vec::new();
    for ((table, a), (_, b)) in left.iter().zip(right) {
        let mut d = TableDiff {
            table: *table,
            rows: (a.len(), b.len()),
            only_left: (0, vec![]),
            only_right: (0, vec![]),
            differ: (0, vec![]),
        };
        for (k, va) in a {
            match b.get(k) {
                None => push(&mut d.only_left, shown, || {
                    format!("{k} => {}", cut(va, 300))
                }),
                Some(vb) if vb != va => push(&mut d.differ, shown, || {
                    format!("{k}: {}", fields(va, vb, names))
                }),
                Some(_) => {}
            }
        }
        for (k, vb) in b {
            if !a.contains_key(k) {
                push(&mut d.only_right, shown, || {
                    format!("{k} => {}", cut(vb, 300))
                });
            }
        }
        out.push(d);
    }
    out
}

fn push(kind: &mut (usize, Vec<String>), shown: usize, line: impl FnOnce() -> String) {
    kind.0 += 1;
    if kind.1.len() < shown {
        kind.1.push(line());
    }
}

/// The fields in which two JSON objects differ, side by side (nested objects such as an
/// invoice document are walked down to the differing leaves).
fn fields(a: &str, b: &str, names: (&str, &str)) -> String {
    let (Ok(va), Ok(vb)) = (
        serde_json::from_str::<Value>(a),
        serde_json::from_str::<Value>(b),
    ) else {
        return format!("{}={} {}={}", names.0, cut(a, 200), names.1, cut(b, 200));
    };
    let mut out = Vec::new();
    leaves("", &va, &vb, &mut out);
    let more = out.len().saturating_sub(6);
    let mut text: Vec<String> = out
        .into_iter()
        .take(6)
        .map(|(path, x, y)| {
            format!(
                "{path}: {}={} {}={}",
                names.0,
                cut(&x, 120),
                names.1,
                cut(&y, 120)
            )
        })
        .collect();
    if more > 0 {
        text.push(format!("and {more} more fields"));
    }
    text.join("; ")
}

fn leaves(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, String, String)>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let null = Value::Null;
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(
                    &p,
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                leaves(&format!("{path}[{i}]"), u, v, out);
            }
        }
        _ if a != b => out.push((path.to_string(), a.to_string(), b.to_string())),
        _ => {}
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// The diff itself, on hand-made sides: what it reports is what the chaos test's verdict
/// rests on.
#[test]
fn a_missing_an_extra_and_a_changed_row_are_each_reported_with_the_differing_fields() {
    let side = |rows: &[(&str, &str)]| -> Snapshot {
        vec![(
            "alerts",
            rows.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )]
    };
    let chaos = side(&[
        ("a", r#"{"amount":"1.00","raised_at":true}"#),
        ("b", r#"{"amount":"2.00","lines":[{"total":"3.00"}]}"#),
        ("c", "{}"),
    ]);
    let reference = side(&[
        ("b", r#"{"amount":"2.00","lines":[{"total":"3.10"}]}"#),
        ("c", "{}"),
        ("d", "{}"),
    ]);
    let d = &diff(&chaos, &reference, 10, ("chaos", "reference"))[0];
    assert!(!d.equal());
    assert_eq!(d.rows, (3, 3));
    assert_eq!(d.only_left.0, 1);
    assert!(d.only_left.1[0].starts_with("a => "));
    assert_eq!(d.only_right.0, 1);
    assert!(d.only_right.1[0].starts_with("d => "));
    assert_eq!(
        d.differ.1,
        vec![r#"b: lines[0].total: chaos="3.00" reference="3.10""#.to_string()]
    );
    assert!(diff(&chaos, &chaos, 10, ("chaos", "reference"))[0].equal());
    assert_eq!(
        normalized(serde_json::json!({"issued_at": "2026-12-07", "resolved_at": null, "n": 1})),
        serde_json::json!({"issued_at": true, "resolved_at": false, "n": 1})
    );
}
