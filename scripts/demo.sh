#!/usr/bin/env bash
# The main job end to end on a fresh machine: start PostgreSQL and a Kafka-protocol
# broker (installing tansu if needed), apply the shipped catalog, create customers,
# generate a month of CDRs with anomalies, run the daemon until the stream is drained,
# reconcile what was sent with what was stored, show what the month is worth and
# explain one price; import the missing subscribers and watch suspense get rated; then
# close the month: invoices in Postgres, as JSON and as PDF, and the alerts raised.
#
# Knobs: DEMO_RECORDS (default 200000), DEMO_CUSTOMERS (default 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

RECORDS=${DEMO_RECORDS:-200000}
CUSTOMERS=${DEMO_CUSTOMERS:-5000}
DB=${CDRFLOW_DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cdrflow_demo}

ensure_postgres
ensure_tansu
log "Building cdrflow (release)"
cargo build --release --bins >&2
BIN=target/release/cdrflow
mkdir -p out
work=$(mktemp -d)
trap 'stop_broker; rm -rf "$work"' EXIT
start_broker sqlite "$work"

log "Fresh database $DB"
psql "${DB%/*}/postgres" -qc "DROP DATABASE IF EXISTS ${DB##*/} WITH (FORCE)" >/dev/null 2>&1 || true
"$BIN" migrate --database-url "$DB"
log "Applying the catalog (catalog/default.toml, see docs/catalog.md)"
"$BIN" catalog apply catalog/default.toml --database-url "$DB"
log "Creating $CUSTOMERS customers on the catalog's plans"
"$BIN" customers generate --count "$CUSTOMERS" --seed 42 --database-url "$DB"

log "Generating $RECORDS CDRs of last month for $CUSTOMERS subscribers (with the default anomaly mix)"
"$BIN" generate --brokers "$BROKER" --count "$RECORDS" --customers "$CUSTOMERS" --seed 42 \
  --database-url "$DB" --report out/generator-report.json >/dev/null

port=$(free_port)
log "Running the daemon until the stream is drained (metrics on http://127.0.0.1:$port/metrics)"
started=$(date +%s.%N)
RUST_LOG=${RUST_LOG:-warn} "$BIN" run --brokers "$BROKER" --database-url "$DB" --http "127.0.0.1:$port" --exit-when-idle 3
ended=$(date +%s.%N)

log "Reconciliation"
"$BIN" stats --database-url "$DB" | tee out/stats.txt
"$BIN" stats --database-url "$DB" --format json >out/stats.json
python3 - "$started" "$ended" <<'PY'
import json, sys
started, ended = map(float, sys.argv[1:])
gen = json.load(open("out/generator-report.json"))
stats = json.load(open("out/stats.json"))
t, e = stats["totals"], gen["expected"]
checks = [
    ("records sent = consumed", gen["sent"], t["consumed"]),
    ("accepted", e["accepted"], t["accepted"]),
    ("duplicates", e["duplicates"], t["duplicates"]),
    ("suspense", e["suspense"], t["suspense"]),
] + [(f"rejected {r}", n, t["rejected"].get(r, 0)) for r, n in sorted(e["rejected"].items())]
ok = all(a == b for _, a, b in checks) and stats["balanced"]
print()
print(f"{'check':<34}{'generator':>12}{'cdrflow':>12}")
for name, a, b in checks:
    print(f"{name:<34}{a:>12,}{b:>12,}{'' if a == b else '   MISMATCH'}")
print()
print(f"processed {t['consumed']:,} records in {ended - started:.1f} s including start-up "
      f"({t['consumed'] / (ended - started):,.0f} records/s)")
print("reconciled: every record accounted for exactly once" if ok else "NOT RECONCILED")
print("reports: out/generator-report.json, out/stats.json, out/stats.txt")
sys.exit(0 if ok else 1)
PY

log "What the traffic is worth (MAD, before allowances, discounts and VAT)"
psql "$DB" -P pager=off -c "
  SELECT record_type AS service, zone, count(*) AS events, sum(units) AS units,
         round(sum(amount), 2) AS revenue, round(sum(cost), 2) AS wholesale_cost,
         count(*) FILTER (WHERE cardinality(bands) > 1) AS split_calls
    FROM usage_events GROUP BY 1, 2 ORDER BY 1, 2" | tee out/revenue.txt

id=$(psql "$DB" -Atc "SELECT record_id FROM usage_events WHERE cardinality(bands) > 1 ORDER BY record_id LIMIT 1")
log "How one price was made: cdrflow explain $id"
"$BIN" explain "$id" --database-url "$DB" --brokers "$BROKER" | tee out/explain.txt

log "Suspense: the unknown subscribers become customers"
psql "$DB" -Atc "SELECT DISTINCT msisdn FROM suspense_records WHERE resolved_at IS NULL" \
  | awk 'BEGIN {print "msisdn,name,plan,region,student,activated_on,credit_limit"} {print $1 ",New customer " NR ",basic,,,,"}' >"$work/new-customers.csv"
"$BIN" customers import "$work/new-customers.csv" --database-url "$DB"
psql "$DB" -Atc "SELECT 'held: ' || count(*) FILTER (WHERE resolved_at IS NULL) || ', rated: ' || count(*) FILTER (WHERE resolution = 'rated') FROM suspense_records"

period=$(psql "$DB" -Atc "SELECT to_char(period, 'YYYY-MM') FROM usage_events GROUP BY period ORDER BY count(*) DESC LIMIT 1")
log "Closing $period: one invoice per active customer (Postgres, out/invoices/*.json and *.pdf)"
rm -rf out/invoices
"$BIN" bill --period "$period" --database-url "$DB" --out out/invoices
psql "$DB" -P pager=off -c "
  SELECT count(*) AS invoices, min(number) AS first, max(number) AS last,
         sum(subtotal) AS subtotal, sum(vat) AS vat, sum(total) AS total
    FROM invoices WHERE period = '$period-01'" | tee out/invoices.txt
psql "$DB" -P pager=off -c "
  SELECT kind, count(*) AS lines, sum(amount) AS amount
    FROM invoice_lines l JOIN invoices i USING (number)
   WHERE i.period = '$period-01' GROUP BY kind ORDER BY kind" | tee -a out/invoices.txt
psql "$DB" -P pager=off -c "
  SELECT threshold || ' %' AS credit_limit_alert, count(*) AS customers FROM alerts
   WHERE period = '$period-01' GROUP BY threshold ORDER BY threshold" | tee -a out/invoices.txt
first=$(psql "$DB" -Atc "SELECT number FROM invoices WHERE period = '$period-01' ORDER BY total DESC LIMIT 1")
log "The largest invoice, $first (out/invoices/$first.pdf):"
if command -v pdftotext >/dev/null; then pdftotext -layout "out/invoices/$first.pdf" - | sed -e '/^\s*$/d'; else head -40 "out/invoices/$first.json"; fi
log "Done. out/ holds the reports and invoices; docs/catalog.md explains the prices."

