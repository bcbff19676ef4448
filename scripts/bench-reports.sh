#!/usr/bin/env bash
# Report benchmark: every report of docs/reports.md answered through the daemon's
# HTTP API over a generated year (100,000 customers, >= 10 million rated events, 12 months).
#
#   scripts/bench-reports.sh                      # full size, database recreated
#   KEEP=1 scripts/bench-reports.sh               # reuse the database a previous run generated
#   CUSTOMERS=2000 EVENTS=200000 scripts/bench-reports.sh   # a quick smoke run
#
# What it does:
#  1. builds the release binary, (re)creates the database DB, migrates it, applies
#     catalog/default.toml and creates CUSTOMERS customers (`cdrflow customers generate`);
#  2. generates the year's rated usage IN SQL (INSERT ... SELECT ... FROM generate_series),
#     NOT through Kafka and the daemon: ten million records through the pipeline take about
#     ten minutes at 20k records/s before billing even starts, and this benchmark measures
#     the reports, not the pipeline (scripts/bench.sh does that). The rows are what the
#     rater stores: tariff, zone, band, units and prices from the applied catalog's
#     catalog_tariffs (amount = units x price + fees, cost = units x wholesale); with them,
#     the month-to-date usage_buckets (as the committers' upserts would leave them),
#     committed_batches and rejected_records (the audit trail the data-quality reports
#     read), and a little late usage (rating_adjustments) after each closed month. The
#     months are generated in order and each closed month is invoiced with the real
#     `cdrflow bill --period YYYY-MM --force` before the next one is generated, as an
#     operator would through the year; the last month stays open;
#  3. refreshes the report aggregates (`cdrflow report --refresh`) and times it (should it
#     fail, says why and refreshes with psql instead), times each aggregate's REFRESH on
#     its own (report_refresh() ANALYZEs them: REFRESH collects no statistics);
#  4. starts tansu (sqlite storage) and `cdrflow run --report-refresh-secs 0 --no-publish`
#     and times every report of GET /api/reports with curl, RUNS times per filter set:
#     none, a middle period, period+service, period+region, period+plan and, for the
#     customer-level reports, period+limit (only the filters the report accepts);
#     then the biggest answer (rfm, limit=100000) as JSON and CSV. Prints the table (a
#     filter set that fails, e.g. HTTP 503 on the daemon's 60 s statement timeout, is a
#     row marked NO, not the end of the run), the database size, the row counts of the
#     report_*_mv aggregates, and the plan of every filter set that took >= 1 s;
#  5. stops the daemon and tansu (trap on exit).
#
# Knobs: CUSTOMERS (100000), EVENTS (10000000, the normal usage; late usage comes on top),
# MONTHS (12), START (YYYY-MM of the first month; default: the last month is the current
# one), SEED (42), DB (cdrflow_bench_reports), KEEP (0; 1 reuses DB if a previous run
# finished generating it), RUNS (5), PERIOD/REGION/PLAN (the filter values; default: the
# middle month, the first region and plan of /api/filters), SKEW (2.0: customer i of n
# gets events in proportion to (i/n)^(1/SKEW - 1), so a few are heavy users),
# LATE_PER_MONTH (2000 late events after each closed month), EXPLAIN_SLOW (1: print
# EXPLAIN (ANALYZE, BUFFERS) of every filter set whose slowest answer took >= 1 s),
# KEEP_WORK (1: keep the temporary folder with the generated SQL and the answers),
# EXPLAIN_SAMPLE (1000 stored events re-rated by `cdrflow explain` as a check of the prices),
# REFRESH_DETAIL (1: after the refresh, time each aggregate's REFRESH on its own),
# REFRESH (1; 0 measures the aggregates as they are, e.g. again with KEEP=1),
# ANALYZE_AGGREGATES (0; 1: ANALYZE the report_*_mv again before measuring; see step 3).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

CUSTOMERS=${CUSTOMERS:-100000}
EVENTS=${EVENTS:-10000000}
MONTHS=${MONTHS:-12}
START=${START:-}
SEED=${SEED:-42}
DB=${DB:-cdrflow_bench_reports}
KEEP=${KEEP:-0}
RUNS=${RUNS:-5}
SKEW=${SKEW:-2.0}
LATE_PER_MONTH=${LATE_PER_MONTH:-2000}
EXPLAIN_SLOW=${EXPLAIN_SLOW:-1}
PG=postgres://postgres@127.0.0.1:5432
URL=$PG/$DB
BIN=target/release/cdrflow
MARK="bench-reports: generated"
export RUST_LOG=${RUST_LOG:-warn}

case "$DB" in *[!a-z0-9_]*) echo "DB must be a plain lower-case name" >&2; exit 2 ;; esac

work=$(mktemp -d)
DAEMON_PID=
cleanup() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$DAEMON_PID" 2>/dev/null && { echo "daemon still running after 30 s; killing it" >&2; kill -KILL "$DAEMON_PID" 2>/dev/null || true; }
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  stop_broker || true
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work files kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

psql_db() { psql -h 127.0.0.1 -U postgres -d "$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }
q() { psql_db -Atc "$1"; }
now() { date +%s.%N; }
secs() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
PHASES=()
BILL_LINES=()
phase_done() { PHASES+=("$1|$2"); log "$1: $2 s (load $(load))"; }

ensure_postgres
log "Load at start: $(uptime)"

t=$(now)
log "Building (release)"
cargo build --release --bins >&2
# A copy: another build replacing target/release/cdrflow must not pull it from under us.
cp "$BIN" "$work/cdrflow"
BIN=$work/cdrflow
phase_done "build (cargo build --release)" "$(secs "$t")"

generated=0
if [ "$KEEP" = 1 ]; then
  comment=$(psql -h 127.0.0.1 -U postgres -d postgres -X -Atc \
    "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$DB'")
  case "$comment" in
    "$MARK"*) generated=1; log "KEEP=1: reusing $DB ($comment)" ;;
    *) echo "KEEP=1, but $DB is missing or was not generated to the end; run without KEEP" >&2; exit 1 ;;
  esac
fi

# ------------------------------------------------------------------ 1. database
if [ "$generated" = 0 ]; then
  t=$(now)
  psql -h 127.0.0.1 -U postgres -X -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  "$BIN" migrate --database-url "$URL" >/dev/null 2>&1
  "$BIN" catalog apply catalog/default.toml --database-url "$URL" >&2
  phase_done "create database, migrate, apply catalog" "$(secs "$t")"
  t=$(now)
  "$BIN" customers generate --count "$CUSTOMERS" --seed "$SEED" --database-url "$URL" >&2
  phase_done "customers generate ($CUSTOMERS)" "$(secs "$t")"
fi

TZNAME=$(python3 - catalog/default.toml <<'PY'
import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb"))["operator"]["timezone"])
PY
)

# ------------------------------------------------------------------ 2. the year of usage
if [ "$generated" = 0 ]; then
VERSION=$(q "SELECT max(version) FROM catalog_versions")

# The catalog's cells, zones, bands and data blocks, and the shape of the traffic, as psql
# variables (array literals) and a few small lookup tables in a scratch schema `bench`,
# dropped once the year is generated. Also the months: period, first day, last day, days
# that have traffic (up to yesterday for the current month) and normal events.
python3 - catalog/default.toml "$EVENTS" "$MONTHS" "$START" "$work" <<'PY'
import sys, tomllib, datetime as dt
from zoneinfo import ZoneInfo

cat = tomllib.load(open(sys.argv[1], "rb"))
events, months, start, work = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
op = cat["operator"]

def arr(values):
    out = []
    for v in values:
        s = str(v)
        out.append('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(out) + "}"

def spread(weights, n=100):
    """n slots filled in proportion to the weights (largest remainder)."""
    total = sum(w for _, w in weights)
    exact = [(k, w * n / total) for k, w in weights]
    counts = {k: int(x) for k, x in exact}
    rest = n - sum(counts.values())
    for k, x in sorted(exact, key=lambda e: e[1] - int(e[1]), reverse=True)[:rest]:
        counts[k] += 1
    return [k for k, _ in weights for _ in range(counts[k])]

def pvar(name, value):
    return "\\set " + name + " '" + value.replace("\\", "\\\\").replace("'", "\\'") + "'\n"

# Cells: CASABLANCA -> Casablanca -> Casablanca-Settat.
region_of = {c: r["name"] for r in cat["regions"] for c in r["cities"]}
cells = sorted((k, c, region_of[c]) for k, c in cat["cells"].items() if c in region_of)
cell_idx = {}
for i, (_, _, r) in enumerate(cells, 1):
    cell_idx.setdefault(r, []).append(i)

# Zones by country, as rating finds them.
zones = cat["zones"]
domestic = next(z["name"] for z in zones if z["kind"] == "domestic")
def zone_for(kind, country):
    for z in zones:
        if z["kind"] == kind and country in z.get("countries", []):
            return z["name"]
    return next(z["name"] for z in zones if z["kind"] == kind and z.get("rest_of_world"))
# Destinations of international calls and SMS (weight, dialling code), and visited countries.
intl = [("DZ", 213, 14), ("TN", 216, 8), ("LY", 218, 2), ("FR", 33, 24), ("ES", 34, 12),
        ("IT", 39, 8), ("BE", 32, 5), ("NL", 31, 3), ("DE", 49, 4), ("GB", 44, 3),
        ("AE", 971, 6), ("SA", 966, 5), ("QA", 974, 2), ("US", 1, 3), ("CN", 86, 1)]
intl_slots = spread([((c, d), w) for c, d, w in intl])
roam = [("FR", 30), ("ES", 25), ("IT", 10), ("BE", 5), ("TR", 10), ("AE", 10), ("SA", 10)]
roam_slots = spread(roam)

# Bands per ISO weekday and hour (the catalog's bands start and end on whole hours).
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
def minutes(hhmm):
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)
band_of = []
for d in days:
    for h in range(24):
        names = [b["name"] for b in cat["bands"] if d in b["days"]
                 and minutes(b["from"]) <= h * 60 < minutes(b["to"])]
        band_of.append(names[0] if names else "")
for b in cat["bands"]:
    if minutes(b["from"]) % 60 or minutes(b["to"]) % 60:
        print(f"warning: band {b['name']} does not start/end on the hour; events are banded by hour", file=sys.stderr)

# Local hour of day (weights), radio technology, reject reasons.
hour_w = [1.5, 0.8, 0.5, 0.3, 0.3, 0.4, 0.9, 2.0, 3.5, 4.8, 5.5, 5.8, 5.9, 5.6, 5.2, 5.3,
          5.6, 6.0, 6.4, 6.6, 6.8, 6.5, 5.0, 3.0]
hours = spread(list(enumerate(hour_w)), 1000)
techs = spread([("2G", 4), ("3G", 12), ("4G", 54), ("5G", 30)])
reasons = spread([("missing_field", 25), ("invalid_value", 20), ("malformed_number", 18),
                  ("invalid_timestamp", 10), ("invalid_json", 10), ("unknown_record_type", 8),
                  ("future_timestamp", 6), ("not_an_object", 2), ("payload_too_large", 1)])

with open(f"{work}/catalog.psql", "w") as f:
    f.write(pvar("tz", op["timezone"]))
    f.write(pvar("home_cc", op.get("home_country", "MA")))
    f.write(pvar("domestic_zone", domestic))
    f.write(pvar("all_cells", arr(k for k, _, _ in cells)))
    f.write(pvar("all_cities", arr(c for _, c, _ in cells)))
    f.write(pvar("all_regions", arr(r for _, _, r in cells)))
    f.write(f"\\set n_cells {len(cells)}\n")
    f.write(pvar("intl_cc", arr(c for (c, _) in intl_slots)))
    f.write(pvar("intl_dial", arr(d for (_, d) in intl_slots)))
    f.write(pvar("intl_zone", arr(zone_for("international", c) for (c, _) in intl_slots)))
    f.write(pvar("roam_cc", arr(roam_slots)))
    f.write(pvar("roam_zone", arr(zone_for("roaming", c) for c in roam_slots)))
    f.write(pvar("band_of", arr(band_of)))
    f.write(pvar("hours", arr(hours)))
    f.write(pvar("techs", arr(techs)))
    f.write(pvar("reasons", arr(reasons)))

# Share of voice and SMS per plan (the rest is data); other plans get 45 % / 20 %.
mix = {"basic": (0.50, 0.30), "student": (0.30, 0.35), "business": (0.60, 0.10), "data-max": (0.25, 0.15)}
with open(f"{work}/tables.sql", "w") as f:
    f.write("CREATE TABLE bench.region_cells (region TEXT PRIMARY KEY, idx INT[] NOT NULL);\n")
    for r, idx in sorted(cell_idx.items()):
        f.write(f"INSERT INTO bench.region_cells VALUES ('{r.replace(chr(39), chr(39) * 2)}', '{{{','.join(map(str, idx))}}}');\n")
    f.write("CREATE TABLE bench.blocks (tariff_id TEXT PRIMARY KEY, block_kb INT NOT NULL);\n")
    for p in cat["plans"]:
        for t in p.get("tariffs", []):
            if t["service"] == "data" and t.get("block_kb", 1) != 1:
                f.write(f"INSERT INTO bench.blocks VALUES ('{p['code']}.data.{t['zone']}', {int(t['block_kb'])});\n")
    f.write("CREATE TABLE bench.plan_mix (plan TEXT PRIMARY KEY, p_voice FLOAT8, p_sms FLOAT8);\n")
    for code, (v, s) in mix.items():
        f.write(f"INSERT INTO bench.plan_mix VALUES ('{code}', {v}, {s});\n")

# The months. Seasonality: summer (the diaspora's holidays) and December are busier.
tz = ZoneInfo(op["timezone"])
today = dt.datetime.now(tz).date()
if start:
    first = dt.date(int(start[:4]), int(start[5:7]), 1)
else:
    last = today.replace(day=1) if today.day > 1 else (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    y, m = last.year, last.month - (months - 1)
    while m < 1:
        y, m = y - 1, m + 12
    first = dt.date(y, m, 1)
season = [0.95, 0.90, 1.00, 0.97, 1.00, 1.02, 1.10, 1.15, 1.00, 1.00, 1.00, 1.05]
plan, d = [], first
for _ in range(months):
    nxt = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    full = (nxt - d).days
    avail = min(full, (today - d).days)
    if avail < 1:
        sys.exit(f"month {d:%Y-%m} has no past day; START must leave every month a past day")
    plan.append([d, nxt - dt.timedelta(days=1), avail, season[d.month - 1] * avail])
    d = nxt
total = sum(p[3] for p in plan)
left = events
for i, p in enumerate(plan):
    n = left if i == len(plan) - 1 else round(events * p[3] / total)
    left -= n
    p[3] = n
with open(f"{work}/months", "w") as f:
    for p in plan:
        f.write(f"{p[0]:%Y-%m} {p[0]} {p[1]} {p[2]} {p[3]}\n")
PY

# One month of usage. psql variables: first_day, last_day, days (with traffic, from
# first_day), n, base (first global event number), seed, and for late usage ingest_from
# and lag_secs. Rows are built in layers: uniform draws (the innermost subquery, evaluated
# once per row), the customer (skewed: rank 1 is the heaviest user; only customers
# activated by the month's end), service by plan, local time (hour of day weighted),
# place (mostly the home region), zone and peer, then the tariff of the applied catalog
# and the rated quantities, exactly as rating computes them for an event in one band
# (a call that crosses a band boundary is priced whole in the band it starts in, where the
# rater would split it: the explain check below counts how often that happens). Sessions
# abroad are small: roaming data costs 5-10 MAD/MB.
# The draws are hashes of the event's number (hashint8extended), not random(): the same
# event gets the same draws however the plan scans it. The OFFSET 0 fences and
# enable_nestloop = off keep the plan to one pass over the events, hashed against the
# customers and the tariffs.
cat >"$work/usage_select.sql" <<'SQL'
SELECT 'fp-' || md5(:'run' || '/' || e.gid) AS record_id, e.customer_id, e.service AS record_type,
       e.msisdn, e.peer AS peer_msisdn, e.peer_country, e.peer_class, e.event_time,
       a.dur AS duration_sec, a.bytes AS volume_bytes,
       CASE WHEN e.service = 'data'
            THEN greatest(1, least(7200, ceil(-ln(1 - e.u_q1) * 900)))::int END AS session_duration_sec,
       e.cell_id, e.city, e.cell_region AS region, e.technology, e.roaming_country,
       'cdr.raw' AS src_topic, (e.gid % 6)::int AS src_partition, e.gid / 6 AS src_offset,
       e.kafka_ts, e.kafka_ts + interval '150 milliseconds' AS ingested_at,
       e.period, e.plan, t.tariff_id, e.zone, e.band, u.units,
       CASE WHEN u.units > 0 THEN greatest(q.part + t.connection_fee, t.minimum_charge) ELSE 0 END AS amount,
       q.cost, t.version AS catalog_version, q.part
  FROM (
    SELECT l.*,
           date_trunc('month', l.event_time AT TIME ZONE :'tz')::date AS period,
           (:'band_of'::text[])[(extract(isodow FROM l.event_time AT TIME ZONE :'tz')::int - 1) * 24
                                + extract(hour FROM l.event_time AT TIME ZONE :'tz')::int + 1] AS band,
           CASE WHEN l.roaming THEN (:'roam_zone'::text[])[l.wi]
                WHEN l.intl THEN (:'intl_zone'::text[])[l.wi]
                ELSE :'domestic_zone' END AS zone,
           CASE WHEN l.roaming THEN (:'roam_cc'::text[])[l.wi] END AS roaming_country,
           CASE WHEN l.service = 'data' THEN NULL
                WHEN l.intl THEN '+' || (:'intl_dial'::text[])[l.wi] || lpad(floor(l.u_peer * 1e9)::bigint::text, 9, '0')
                ELSE '+2126' || lpad(floor(l.u_peer * 1e8)::bigint::text, 8, '0') END AS peer,
           CASE WHEN l.service = 'data' THEN NULL WHEN l.intl THEN (:'intl_cc'::text[])[l.wi]
                ELSE :'home_cc' END AS peer_country,
           CASE WHEN l.service = 'data' THEN NULL WHEN l.intl THEN 'international'
                ELSE 'domestic' END AS peer_class,
           (:'all_cells'::text[])[l.ci] || '_' || (1 + l.gid % 40) AS cell_id,
           (:'all_cities'::text[])[l.ci] AS city,
           (:'all_regions'::text[])[l.ci] AS cell_region,
           (:'techs'::text[])[1 + floor(l.u_tech * 100)::int] AS technology,
           greatest(l.event_time, :'ingest_from'::timestamptz)
             + (1 + floor(l.u_lag * :lag_secs)) * interval '1 second' AS kafka_ts
      FROM (
        SELECT k.*, (k.local_ts AT TIME ZONE :'tz') AS event_time,
               k.u_roam < 0.03 AS roaming,
               k.service <> 'data' AND k.u_roam >= 0.03 AND k.u_intl < 0.07 AS intl
          FROM (
            SELECT g.*, c.customer_id, c.msisdn, c.plan,
                   CASE WHEN g.u_svc < coalesce(pm.p_voice, 0.45) THEN 'voice'
                        WHEN g.u_svc < coalesce(pm.p_voice, 0.45) + coalesce(pm.p_sms, 0.20) THEN 'sms'
                        ELSE 'data' END AS service,
                   greatest(:'first_day'::timestamp + floor(g.u_day * :days)::int * interval '1 day',
                            c.activated_on::timestamp)
                     + (:'hours'::int[])[1 + floor(g.u_hour * 1000)::int] * interval '1 hour'
                     + floor(g.u_sec * 3600)::int * interval '1 second' AS local_ts,
                   1 + floor(g.u_where * 100)::int AS wi,
                   CASE WHEN rc.idx IS NOT NULL AND g.u_loc < 0.85
                        THEN rc.idx[1 + floor(g.u_city * cardinality(rc.idx))::int]
                        ELSE 1 + floor(g.u_city * :n_cells)::int END AS ci
              FROM (
                SELECT x.gid,
                       (hashint8extended(x.gid, :hseed + 1) & 9007199254740991)::float8 / 9007199254740992 AS u_cust,
                       (hashint8extended(x.gid, :hseed + 2) & 9007199254740991)::float8 / 9007199254740992 AS u_svc,
                       (hashint8extended(x.gid, :hseed + 3) & 9007199254740991)::float8 / 9007199254740992 AS u_day,
                       (hashint8extended(x.gid, :hseed + 4) & 9007199254740991)::float8 / 9007199254740992 AS u_hour,
                       (hashint8extended(x.gid, :hseed + 5) & 9007199254740991)::float8 / 9007199254740992 AS u_sec,
                       (hashint8extended(x.gid, :hseed + 6) & 9007199254740991)::float8 / 9007199254740992 AS u_where,
                       (hashint8extended(x.gid, :hseed + 7) & 9007199254740991)::float8 / 9007199254740992 AS u_loc,
                       (hashint8extended(x.gid, :hseed + 8) & 9007199254740991)::float8 / 9007199254740992 AS u_city,
                       (hashint8extended(x.gid, :hseed + 9) & 9007199254740991)::float8 / 9007199254740992 AS u_tech,
                       (hashint8extended(x.gid, :hseed + 10) & 9007199254740991)::float8 / 9007199254740992 AS u_q1,
                       (hashint8extended(x.gid, :hseed + 11) & 9007199254740991)::float8 / 9007199254740992 AS u_q2,
                       (hashint8extended(x.gid, :hseed + 12) & 9007199254740991)::float8 / 9007199254740992 AS u_peer,
                       (hashint8extended(x.gid, :hseed + 13) & 9007199254740991)::float8 / 9007199254740992 AS u_lag,
                       (hashint8extended(x.gid, :hseed + 14) & 9007199254740991)::float8 / 9007199254740992 AS u_roam,
                       (hashint8extended(x.gid, :hseed + 15) & 9007199254740991)::float8 / 9007199254740992 AS u_intl
                  FROM (SELECT :base::bigint + i AS gid FROM generate_series(0, :n - 1) AS i) x
                OFFSET 0
              ) g
              JOIN cm c ON c.rn = 1 + floor(:k * power(g.u_cust, :skew))::int
              LEFT JOIN bench.plan_mix pm ON pm.plan = c.plan
              LEFT JOIN bench.region_cells rc ON rc.region = c.region
          ) k
      ) l
    OFFSET 0  -- computed once per row, then joined to the tariffs by value
  ) e
  JOIN catalog_tariffs t
    ON t.version = :ver AND t.plan = e.plan AND t.service = e.service AND t.zone = e.zone AND t.band = e.band
  LEFT JOIN bench.blocks bl ON bl.tariff_id = t.tariff_id
 CROSS JOIN LATERAL (
    SELECT CASE WHEN e.service = 'voice'
                THEN greatest(1, least(3600, ceil(-ln(1 - e.u_q1) * CASE WHEN e.u_q2 < 0.1 THEN 480 ELSE 90 END)))::int END AS dur,
           CASE WHEN e.service = 'data'
                THEN floor(1048576 * CASE WHEN e.roaming THEN 0.02 ELSE 1 END
                           * CASE WHEN e.u_q2 < 0.70 THEN 0.01 + e.u_q1 * 49.99
                                  WHEN e.u_q2 < 0.95 THEN 50 + e.u_q1 * 450
                                  ELSE 500 + e.u_q1 * 1500 END)::bigint END AS bytes,
           split_part(coalesce(t.charging, '60/60'), '/', 1)::int AS first,
           split_part(coalesce(t.charging, '60/60'), '/', 2)::int AS step
  ) a
 CROSS JOIN LATERAL (
    SELECT CASE e.service
             WHEN 'voice' THEN CASE WHEN a.dur <= a.first THEN a.first
                                    ELSE a.first + ceil((a.dur - a.first)::numeric / a.step)::int * a.step END
             WHEN 'sms' THEN 1
             ELSE (ceil(ceil(a.bytes / 1024.0) / coalesce(bl.block_kb, 1)) * coalesce(bl.block_kb, 1))::bigint
           END::bigint AS units
  ) u
 CROSS JOIN LATERAL (
    SELECT CASE e.service WHEN 'voice' THEN round(t.price * u.units / 60, 6)
                          WHEN 'sms' THEN round(t.price, 6)
                          ELSE round(t.price * u.units / 1024, 6) END AS part,
           CASE e.service WHEN 'voice' THEN round(t.wholesale * u.units / 60, 6)
                          WHEN 'sms' THEN round(t.wholesale, 6)
                          ELSE round(t.wholesale * u.units / 1024, 6) END AS cost
  ) q
SQL

cols="record_id, customer_id, record_type, msisdn, peer_msisdn, peer_country, peer_class,
      event_time, duration_sec, volume_bytes, session_duration_sec, cell_id, city, region,
      technology, roaming_country, src_topic, src_partition, src_offset, kafka_ts, ingested_at,
      period, plan, tariff_id, zone, band, units, amount, cost, catalog_version"
head_sql="SET synchronous_commit = off;
SET work_mem = '256MB';
SET enable_nestloop = off;
SELECT setseed(:seed);
CREATE TEMP TABLE cm AS
  SELECT row_number() OVER (ORDER BY rank)::int AS rn, customer_id, msisdn, plan, region, activated_on
    FROM bench.cust WHERE activated_on <= :'last_day'::date;
SELECT count(*) AS k FROM cm \\gset
ANALYZE cm;"

# The start of both generated statements: the session, then an INSERT of usage rows
# whose SELECT is usage_select.sql; each closes it and adds its own RETURNING.
insert_usage_head() {
  echo "$head_sql"
  echo "WITH ins AS ("
  echo "  INSERT INTO usage_events ($cols)"
  echo "  SELECT $cols FROM ("
  cat "$work/usage_select.sql"
}

# Normal usage: the events, their buckets (the sum of the month's events per customer,
# tariff, band and version, with what the band price does not explain as extra, like
# buckets_from_usage.sql), and the committers' audit trail: a batch per partition and
# four hours, with duplicates, suspense and rejects around their rates (a few days ten
# times as many rejects), and a rejected_records row per reject.
{
  insert_usage_head
  cat <<SQL
  ) src
  RETURNING customer_id, period, tariff_id, band, catalog_version, record_type, zone, units,
            amount, cost, ingested_at, src_partition, src_offset
), bk AS (
  INSERT INTO usage_buckets AS b (customer_id, period, tariff_id, band, catalog_version, service,
                                  zone, price, units, events, amount, extra, cost)
  SELECT i.customer_id, i.period, i.tariff_id, i.band, i.catalog_version, i.record_type, i.zone,
         t.price, sum(i.units)::int8, count(*), sum(p.part), sum(i.amount - p.part), sum(i.cost)
    FROM ins i
    JOIN catalog_tariffs t
      ON t.version = i.catalog_version AND t.tariff_id = i.tariff_id AND t.band = i.band
   CROSS JOIN LATERAL (
      SELECT CASE i.record_type WHEN 'voice' THEN round(t.price * i.units / 60, 6)
                                WHEN 'sms' THEN round(t.price * i.units, 6)
                                ELSE round(t.price * i.units / 1024, 6) END AS part) p
   GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
  ON CONFLICT (customer_id, period, tariff_id, band, catalog_version) DO UPDATE
     SET units = b.units + EXCLUDED.units, events = b.events + EXCLUDED.events,
         amount = b.amount + EXCLUDED.amount, extra = b.extra + EXCLUDED.extra,
         cost = b.cost + EXCLUDED.cost
  RETURNING 1
), cb AS (
  INSERT INTO committed_batches (group_id, topic, partition, from_offset, to_offset, records,
                                 accepted, duplicates, suspense, rejected, committed_at)
  SELECT 'cdrflow', 'cdr.raw', s.p, s.lo, s.hi, s.acc + s.dup + s.sus + s.rej, s.acc, s.dup,
         s.sus, s.rej, s.at
    FROM (SELECT x.p, x.lo, x.hi, x.acc, x.at,
                 floor(x.acc * 0.004 * (0.5 + random()))::int AS dup,
                 floor(x.acc * 0.002 * (0.5 + random()))::int AS sus,
                 floor(x.acc * 0.008 * (0.5 + random())
                       * CASE WHEN abs(hashtext(x.day::text)) % 20 = 0 THEN 10 ELSE 1 END)::int AS rej
            FROM (SELECT src_partition AS p, min(src_offset) AS lo, max(src_offset) AS hi,
                         count(*)::int AS acc, max(ingested_at) AS at,
                         min((ingested_at AT TIME ZONE :'tz')::date) AS day
                    FROM ins
                   GROUP BY src_partition, floor(extract(epoch FROM ingested_at) / 14400)) x) s
  RETURNING id, partition, rejected, committed_at
), rj AS (
  INSERT INTO rejected_records (src_topic, src_partition, src_offset, reason, detail, raw,
                                kafka_ts, rejected_at)
  SELECT 'cdr.raw', z.partition, 1000000000000 + z.id * 100000 + z.k, z.reason,
         CASE z.reason
           WHEN 'missing_field' THEN 'field duration_sec is missing'
           WHEN 'invalid_value' THEN 'duration_sec: expected a non-negative integer, got -12'
           WHEN 'malformed_number' THEN 'caller_id 0612-34 is not a phone number'
           WHEN 'invalid_timestamp' THEN 'timestamp 31/02/2026 25:61 is not a date and time'
           WHEN 'invalid_json' THEN 'expected value at line 1 column 1'
           WHEN 'unknown_record_type' THEN 'record_type mms is not voice, sms or data'
           WHEN 'future_timestamp' THEN 'timestamp is more than 24 hours ahead'
           WHEN 'not_an_object' THEN 'the payload is a JSON array, not an object'
           ELSE 'payload larger than 65536 bytes' END,
         convert_to(CASE z.reason
           WHEN 'invalid_json' THEN 'voice;2126' || lpad((z.id % 100000000)::text, 8, '0') || ';60'
           ELSE '{"record_type":"voice","timestamp":"' || to_char(z.committed_at, 'YYYY-MM-DD"T"HH24:MI:SS')
                || '","caller_id":"2126' || lpad((z.id % 100000000)::text, 8, '0')
                || '","duration_sec":' || (z.k * 7) || '}' END, 'UTF8'),
         z.committed_at - interval '2 seconds', z.committed_at
    FROM (SELECT cb.id, cb.partition, cb.committed_at, k,
                 (:'reasons'::text[])[1 + floor(random() * 100)::int] AS reason
            FROM cb, generate_series(1, cb.rejected) AS k) z
  RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS events, (SELECT count(*) FROM bk) AS buckets,
       (SELECT count(*) FROM cb) AS batches, (SELECT count(*) FROM rj) AS rejects;
SQL
} >"$work/month.sql"

# Late usage of a closed month: stored as usage of its month, owed on the next invoice
# (insert_late.sql), never added to the closed month's buckets.
{
  insert_usage_head
  cat <<SQL
  ) src
  RETURNING record_id, customer_id, period, catalog_version, amount, ingested_at
), adj AS (
  INSERT INTO rating_adjustments (record_id, customer_id, period, catalog_version, old_amount,
                                  new_amount, delta, in_place, kind, created_at)
  SELECT record_id, customer_id, period, catalog_version, 0, amount, amount, false, 'late', ingested_at
    FROM ins
  RETURNING 1
)
SELECT (SELECT count(*) FROM ins) AS events, (SELECT count(*) FROM adj) AS adjustments;
SQL
} >"$work/late.sql"

psql_db -c "SET client_min_messages = warning" -c "DROP SCHEMA IF EXISTS bench CASCADE" -c "CREATE SCHEMA bench" \
  -c "SELECT setseed(0.$SEED)" \
  -c "CREATE TABLE bench.cust AS
        SELECT row_number() OVER (ORDER BY random())::int AS rank, customer_id, msisdn, plan,
               coalesce(region, 'unknown') AS region, activated_on
          FROM (SELECT * FROM customers ORDER BY customer_id) c" \
  -f "$work/tables.sql" -c "ANALYZE bench.cust" -c "ANALYZE catalog_tariffs" -c "ANALYZE customers" >/dev/null

cat >&2 <<EOF

NOTE: the year's usage is generated IN SQL (INSERT ... SELECT ... FROM generate_series),
NOT through Kafka and the daemon: $EVENTS records through the pipeline would take about
$((EVENTS / 20000)) s ($((EVENTS / 20000 / 60)) min) at 20k records/s before billing starts, and
this benchmark measures the reports, not the pipeline (scripts/bench.sh does).
The rows are priced from the applied catalog (version $VERSION) as the rater prices an
event in one band; usage_buckets, committed_batches, rejected_records and late usage
(rating_adjustments) are filled to match. Invoices come from the real \`cdrflow bill\`.

EOF

gen_total=0; bill_total=0; bill_refresh_total=0; late_total=0; BILL_REFRESH_FAILED=0
base=0; i=0; nmonths=$(wc -l <"$work/months")
BILL_LINES=()
while read -r ym first last days n <&3; do
  i=$((i + 1))
  t=$(now)
  out=$(psql_db -At -F ' ' -f "$work/catalog.psql" -v run="$SEED" -v ver="$VERSION" -v skew="$SKEW" \
    -v seed="0.$(printf '%02d%s' "$i" "$SEED")" -v hseed="$((SEED * 1000))" -v first_day="$first" -v last_day="$last" -v days="$days" \
    -v n="$n" -v base="$base" -v ingest_from=-infinity -v lag_secs=30 -f "$work/month.sql" | tail -1)
  took=$(secs "$t"); gen_total=$(python3 -c "print(f'{$gen_total + $took:.1f}')")
  read -r got buckets batches rejects <<<"$out"
  [ "$got" = "$n" ] || log "warning: $ym: $got events stored of $n drawn (a plan without a tariff for a zone/band?)"
  log "usage $ym ($i/$nmonths): $got events, $buckets buckets, $batches batches, $rejects rejects in $took s ($(python3 -c "print(f'{$got / max($took, 0.1):,.0f}')") events/s, load $(load))"
  base=$((base + n))
  if [ "$i" -lt "$nmonths" ]; then
    t=$(now)
    bill_out=$("$BIN" bill --period "$ym" --force --database-url "$URL" 2>&1)
    took=$(secs "$t"); bill_total=$(python3 -c "print(f'{$bill_total + $took:.1f}')")
    echo "$bill_out" >&2
    if refreshed=$(echo "$bill_out" | grep -oE 'aggregates refreshed (in |\()[0-9.]+' | grep -oE '[0-9.]+$'); then
      bill_refresh_total=$(python3 -c "print(f'{$bill_refresh_total + $refreshed:.1f}')")
    else
      # `cdrflow bill` goes on when the refresh fails (before 82d96d5, the 60 s
      # statement_timeout of cdrflow's connections cancelled refreshes over ~5M events).
      refreshed=FAILED
      BILL_REFRESH_FAILED=$((BILL_REFRESH_FAILED + 1))
    fi
    BILL_LINES+=("$ym|$took|$refreshed")
    log "bill $ym: $took s, of which the report refresh in cdrflow bill: ${refreshed} s (load $(load))"
    if [ "$LATE_PER_MONTH" -gt 0 ]; then
      # Late arrivals: events of the month's last three days, received 1-4 days after it.
      t=$(now)
      late_first=$(python3 -c "import datetime as d; print(d.date.fromisoformat('$last') - d.timedelta(days=2))")
      ingest_from=$(python3 -c "import datetime as d; print(d.date.fromisoformat('$last') + d.timedelta(days=2))")
      out=$(psql_db -At -F ' ' -f "$work/catalog.psql" -v run="$SEED-late" -v ver="$VERSION" -v skew="$SKEW" \
        -v seed="0.9$(printf '%02d%s' "$i" "$SEED")" -v hseed="$((SEED * 1000))" -v first_day="$late_first" -v last_day="$last" -v days=3 \
        -v n="$LATE_PER_MONTH" -v base="$((EVENTS + (i - 1) * LATE_PER_MONTH))" \
        -v ingest_from="$ingest_from 00:00:00 $TZNAME" -v lag_secs=259200 -f "$work/late.sql" | tail -1)
      late_total=$(python3 -c "print(f'{$late_total + $(secs "$t"):.1f}')")
      log "late usage of $ym: $out (events, adjustments owed on the next invoice)"
    fi
  fi
done 3<"$work/months"
phase_done "usage generated in SQL ($EVENTS events + late usage)" "$gen_total"
phase_done "late usage generated in SQL" "$late_total"
phase_done "cdrflow bill x $((nmonths - 1)) (incl. its report refreshes: $bill_refresh_total s; $BILL_REFRESH_FAILED failed)" "$bill_total"

# The buckets must be what src/storage/sql/buckets_from_usage.sql makes of the stored
# events (the invariant `cdrflow bill` and the reconciliation test rely on): checked for
# every 97th customer in every month.
{
  echo "WITH s AS (SELECT c.customer_id, p.period FROM customers c, billing_periods p WHERE c.customer_id % 97 = 0"
  echo "           UNION SELECT DISTINCT customer_id, period FROM usage_buckets WHERE customer_id % 97 = 0),"
  echo "want AS ("
  sed -e 's/\$1::int8\[\]/(SELECT array_agg(customer_id) FROM s)/' -e 's/\$2::date\[\]/(SELECT array_agg(period) FROM s)/' \
    src/storage/sql/buckets_from_usage.sql
  echo ")"
  echo "SELECT count(*), (SELECT count(*) FROM usage_buckets b WHERE (b.customer_id, b.period) IN (SELECT * FROM s)),"
  echo "       count(*) FILTER (WHERE b.customer_id IS NULL OR (b.units, b.events, b.amount, b.extra, b.cost, b.price, b.service, b.zone)"
  echo "                  IS DISTINCT FROM (w.units, w.events, w.amount, w.extra, w.cost, w.price, w.service, w.zone))"
  echo "  FROM want w LEFT JOIN usage_buckets b USING (customer_id, period, tariff_id, band, catalog_version);"
} >"$work/bucket_check.sql"
read -r want have differ <<<"$(psql_db -At -F ' ' -f "$work/bucket_check.sql")"
BUCKET_CHECK="$want buckets recomputed from the events of every 97th customer (buckets_from_usage.sql), $have stored, $differ differ"
log "bucket check: $BUCKET_CHECK"
if [ "$want" != "$have" ] || [ "$differ" != 0 ]; then echo "the generated buckets do not match the events" >&2; exit 1; fi

t=$(now)
psql_db -c "SET client_min_messages = warning" -c "DROP SCHEMA bench CASCADE" >/dev/null
# Vacuum and analyze now, so that autovacuum does not wake up in the middle of the
# measurements (and the planner knows the new tables).
psql_db -c "VACUUM (ANALYZE) usage_events" -c "VACUUM (ANALYZE) usage_buckets" \
  -c "VACUUM (ANALYZE) invoices" -c "VACUUM (ANALYZE) invoice_lines" \
  -c "VACUUM (ANALYZE) committed_batches" -c "VACUUM (ANALYZE) rejected_records" \
  -c "VACUUM (ANALYZE) rating_adjustments" -c "VACUUM (ANALYZE) customers" >/dev/null
psql -h 127.0.0.1 -U postgres -X -qc "COMMENT ON DATABASE $DB IS '$MARK $(date -u +%FT%TZ): $CUSTOMERS customers, $EVENTS events, $MONTHS months, seed $SEED'"
phase_done "vacuum analyze" "$(secs "$t")"

fi

# ------------------------------------------------------------------ 3. refresh
t=$(now)
REFRESH_NOTE=
REFRESH_DETAIL_LINES=()
if [ "${REFRESH:-1}" = 0 ]; then
  REFRESH_NOTE="REFRESH=0: the aggregates were not refreshed by this run (last refresh: $(q "SELECT refreshed_at FROM report_refreshes"))"
  log "$REFRESH_NOTE"
elif refresh_out=$("$BIN" report --refresh --database-url "$URL" 2>&1); then
  echo "$refresh_out" >&2
  phase_done "report refresh (cdrflow report --refresh, wall)" "$(secs "$t")"
else
  echo "$refresh_out" >&2
  phase_done "report refresh (cdrflow report --refresh) FAILED after" "$(secs "$t")"
  limit=$(grep -o 'statement_timeout=[0-9]*' src/storage/mod.rs | head -1 || true)
  REFRESH_NOTE="cdrflow report --refresh FAILED: $(echo "$refresh_out" | tail -1). cdrflow's connections run with ${limit:-a statement_timeout} ms (src/storage/mod.rs) and report_refresh() is one statement (the PostgreSQL log says 'canceling statement due to statement timeout' when that is the cause). Refreshed instead with psql, without a timeout."
  log "$REFRESH_NOTE"
  t=$(now)
  psql_db -Atc "SELECT report_refresh('$TZNAME')" >/dev/null
  phase_done "report refresh (psql: SELECT report_refresh('$TZNAME'), no timeout, wall)" "$(secs "$t")"
fi
REFRESH_PG=$(q "SELECT seconds FROM report_refreshes")
# Where the time goes: each aggregate refreshed again on its own, in report_refresh()'s
# order and time zone (REFRESH_DETAIL=0 skips this).
if [ "${REFRESH:-1}" = 1 ] && [ "${REFRESH_DETAIL:-1}" = 1 ]; then
  for mv in $(q "SELECT (regexp_matches(prosrc, 'REFRESH MATERIALIZED VIEW CONCURRENTLY (\w+)', 'g'))[1] FROM pg_proc WHERE proname = 'report_refresh'"); do
    t=$(now)
    psql_db -c "SET TimeZone = '$TZNAME'" -c "REFRESH MATERIALIZED VIEW CONCURRENTLY $mv"
    REFRESH_DETAIL_LINES+=("$mv|$(secs "$t")")
    log "REFRESH MATERIALIZED VIEW CONCURRENTLY $mv: $(secs "$t") s"
  done
fi

# REFRESH does not collect statistics; report_refresh() ANALYZEs the aggregates itself
# since migration V5, so the measurements see what the daemon's readers see.
# ANALYZE_AGGREGATES=1 analyzes them once more here (e.g. with REFRESH=0 on an older run).
AUTOVACUUM=$(q "SHOW autovacuum")
if [ "${ANALYZE_AGGREGATES:-0}" = 1 ]; then
  t=$(now)
  for mv in $(q "SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' ORDER BY 1"); do
    psql_db -c "ANALYZE $mv"
  done
  phase_done "ANALYZE of the report aggregates (autovacuum is $AUTOVACUUM here)" "$(secs "$t")"
fi

# Do the generated prices hold? `cdrflow explain` prices a stored event again from the
# catalog, as the rater would, and exits 3 when that differs from the stored amount
# (--no-broker: these events were never in Kafka; the API's explain would wait 5 s for
# the broker to say so).
matched=0; sampled=0; mismatched=()
for id in $(q "SELECT record_id FROM usage_events TABLESAMPLE SYSTEM (0.1) REPEATABLE (1) ORDER BY random() LIMIT ${EXPLAIN_SAMPLE:-1000}"); do
  sampled=$((sampled + 1))
  if "$BIN" explain "$id" --no-broker --database-url "$URL" >/dev/null 2>&1; then
    matched=$((matched + 1))
  else
    mismatched+=("$id")
  fi
done
EXPLAIN_CHECK="$matched of $sampled sampled events re-rate to their stored amount (cdrflow explain)"
[ ${#mismatched[@]} -gt 0 ] && EXPLAIN_CHECK="$EXPLAIN_CHECK; not: ${mismatched[*]:0:5}"
log "explain check: $EXPLAIN_CHECK"

# ------------------------------------------------------------------ 4. the API
# tansu may be being installed by another job right now: wait for that rather than
# starting a second install.
while pgrep -f 'cargo install tansu' >/dev/null 2>&1; do
  log "Waiting for a running 'cargo install tansu' to finish"
  sleep 20
done
ensure_tansu
start_broker sqlite "$work"
port=$(free_port)
API=http://127.0.0.1:$port
"$BIN" run --brokers "$BROKER" --topic cdr.bench-reports --group bench-reports \
  --database-url "$URL" --http "127.0.0.1:$port" --report-refresh-secs 0 --no-publish \
  2>"$work/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 1 120); do
  curl -sf "$API/readyz" >/dev/null 2>&1 && break
  if ! kill -0 "$DAEMON_PID" 2>/dev/null; then echo "daemon exited:" >&2; tail -20 "$work/daemon.log" >&2; exit 1; fi
  sleep 0.5
done
curl -sf "$API/readyz" >/dev/null || { echo "daemon not ready after 60 s" >&2; tail -20 "$work/daemon.log" >&2; exit 1; }
log "Daemon ready on $API"
# Let the daemon's start-up work settle, and autovacuum finish with this database.
sleep 5
for _ in $(seq 1 120); do
  [ "$(psql -h 127.0.0.1 -U postgres -X -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND datname = '$DB'")" = 0 ] && break
  sleep 1
done

curl -sf "$API/api/reports" >"$work/reports.json"
curl -sf "$API/api/filters" >"$work/filters.json"
read -r P R PL <<<"$(python3 - "$work/filters.json" "${PERIOD:-}" "${REGION:-}" "${PLAN:-}" <<'PY'
import json, sys
f = json.load(open(sys.argv[1]))
periods = sorted(f["periods"])
period = sys.argv[2] or periods[len(periods) // 2 - (1 if len(periods) % 2 == 0 else 0)]
region = sys.argv[3] or next(r for r in f["regions"] if r != "unknown")
plan = sys.argv[4] or f["plans"][0]
print(period, region.replace(" ", "%20"), plan)
PY
)"
R=${R//%20/ }

# The filter sets of each report: lines "report<TAB>label<TAB>query".
python3 - "$work/reports.json" "$P" "$R" "$PL" >"$work/cases" <<'PY'
import json, sys, urllib.parse
reports = json.load(open(sys.argv[1]))
period, region, plan = sys.argv[2:5]
for r in reports:
    f = set(r["filters"])
    cases = [("none", {})]
    if "period" in f:
        cases.append((f"period={period}", {"period": period}))
        if "service" in f:
            cases.append((f"period+service=voice", {"period": period, "service": "voice"}))
        if "region" in f:
            cases.append((f"period+region={region}", {"period": period, "region": region}))
        if "plan" in f:
            cases.append((f"period+plan={plan}", {"period": period, "plan": plan}))
        if "limit" in f:
            cases.append(("period+limit=1000", {"period": period, "limit": 1000}))
            cases.append(("period+limit=100000", {"period": period, "limit": 100000}))
    for label, params in cases:
        print(f"{r['name']}\t{label}\t{urllib.parse.urlencode(params)}")
print(f"rfm\tlimit=100000 csv\tlimit=100000&format=csv")
print(f"rfm\tperiod+limit=100000 csv\t{urllib.parse.urlencode({'period': period, 'limit': 100000, 'format': 'csv'})}")
PY

log "Measuring $(wc -l <"$work/cases") filter sets x $RUNS requests (period $P, region $R, plan $PL); load $(load)"
LOAD_BEFORE=$(uptime)
: >"$work/results"
while IFS=$'\t' read -r name label query <&3; do
  times=()
  for run in $(seq 1 "$RUNS"); do
    res=$(curl -s -o "$work/body" -w '%{http_code} %{time_total} %{size_download}' "$API/api/reports/$name?$query")
    read -r code secs_ size <<<"$res"
    times+=("$secs_")
    if [ "$code" != 200 ]; then
      # Recorded, not fatal: the table says which filter set failed and after how long
      # (a cancelled query takes the daemon's 60 s statement_timeout; not repeated).
      log "GET /api/reports/$name?$query: HTTP $code after $secs_ s: $(head -c 300 "$work/body")"
      rows="HTTP $code"; bytes=$size
      break
    fi
    if [ "$run" = 1 ]; then
      case "$query" in
        *format=csv*) rows=$(( $(wc -l <"$work/body") - 1 )) ;;
        *) rows=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['rows']))" "$work/body") ;;
      esac
      bytes=$size
    fi
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$label" "$rows" "$bytes" "${times[*]}" "$query" >>"$work/results"
done 3<"$work/cases"
LOAD_AFTER=$(uptime)
DAEMON_WARNINGS=$(grep -c 'WARN\|ERROR' "$work/daemon.log" || true)

echo
echo "cdrflow report benchmark ($CUSTOMERS customers, $MONTHS months, database $DB)"
echo "  NOTE: usage generated in SQL (INSERT ... SELECT FROM generate_series), not through"
echo "        Kafka and the daemon; invoices by the real cdrflow bill."
echo "  PostgreSQL: $(q "SELECT current_setting('server_version') || ', shared_buffers ' || current_setting('shared_buffers') || ', work_mem ' || current_setting('work_mem') || ', autovacuum ' || current_setting('autovacuum')"); $(nproc) cores"
echo "  report aggregates analyzed: by report_refresh() itself; again before the measurements: $([ "${ANALYZE_AGGREGATES:-0}" = 1 ] && echo yes || echo no)"
echo "  load before the measurements: $LOAD_BEFORE"
echo "  load after:                   $LOAD_AFTER"
echo "  daemon log: $DAEMON_WARNINGS warning/error line(s) during the measurements"
echo
echo "Phases:"
for p in "${PHASES[@]}"; do printf '  %-72s %8s s\n' "${p%%|*}" "${p##*|}"; done
echo "  report_refresh() as PostgreSQL timed it: $REFRESH_PG s"
[ -n "$REFRESH_NOTE" ] && echo "  NOTE: $REFRESH_NOTE"
[ "${BILL_REFRESH_FAILED:-0}" -gt 0 ] && echo "  NOTE: the refresh at the end of cdrflow bill failed $BILL_REFRESH_FAILED time(s) (see the per-month lines)"
if [ ${#REFRESH_DETAIL_LINES[@]} -gt 0 ]; then
  echo "  each aggregate refreshed on its own (REFRESH ... CONCURRENTLY, wall s):"
  for l in "${REFRESH_DETAIL_LINES[@]}"; do printf '    %-34s %8s\n' "${l%%|*}" "${l##*|}"; done
fi
if [ ${#BILL_LINES[@]} -gt 0 ]; then
  echo "  cdrflow bill per month (wall s, report refresh inside it s):"
  for l in "${BILL_LINES[@]}"; do IFS='|' read -r a b c <<<"$l"; printf '    %s %8s %8s\n' "$a" "$b" "$c"; done
fi
echo
echo "Data:"
psql_db -Atc "SELECT '  usage_events       ' || to_char(count(*), 'FM999,999,999') || ' events, ' || count(DISTINCT period) || ' periods, '
                     || to_char(count(DISTINCT customer_id), 'FM999,999,999') || ' customers with usage' FROM usage_events"
psql_db -Atc "SELECT '  ' || rpad(s, 18) || ' ' || to_char(n, 'FM999,999,999') FROM (
                SELECT 'customers' s, count(*) n FROM customers UNION ALL
                SELECT 'usage_buckets', count(*) FROM usage_buckets UNION ALL
                SELECT 'invoices', count(*) FROM invoices UNION ALL
                SELECT 'invoice_lines', count(*) FROM invoice_lines UNION ALL
                SELECT 'committed_batches', count(*) FROM committed_batches UNION ALL
                SELECT 'rejected_records', count(*) FROM rejected_records UNION ALL
                SELECT 'late adjustments', count(*) FROM rating_adjustments WHERE kind = 'late') x"
psql_db -Atc "SELECT '  events by service  ' || string_agg(record_type || ' ' || pct || ' %', ', ' ORDER BY record_type) FROM (SELECT record_type, round(100.0 * count(*) / sum(count(*)) OVER (), 1) pct FROM usage_events GROUP BY 1) x"
[ -n "${BUCKET_CHECK:-}" ] && echo "  bucket check       $BUCKET_CHECK"
echo "  explain check      $EXPLAIN_CHECK"
echo "  database size      $(q "SELECT pg_size_pretty(pg_database_size(current_database()))")"
echo "  largest relations:"
psql_db -Atc "SELECT '    ' || rpad(c.relname, 34) || lpad(pg_size_pretty(pg_total_relation_size(c.oid)), 10)
                FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'public' AND c.relkind IN ('r', 'm')
               ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 8"
echo "  report aggregates (rows, size):"
for mv in $(q "SELECT matviewname FROM pg_matviews WHERE schemaname = 'public' ORDER BY matviewname"); do
  printf '    %-34s %12s %10s\n' "$mv" "$(q "SELECT to_char(count(*), 'FM999,999,999') FROM $mv")" \
    "$(q "SELECT pg_size_pretty(pg_total_relation_size('$mv'))")"
done
echo
echo "Answer times through the API (curl time_total, $RUNS requests each):"
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print(f"  {'report':<24} {'filters':<36} {'rows':>8} {'bytes':>10} {'median ms':>10} {'max ms':>8}  < 1 s")
slow = 0
for name, label, n, size, times, *query in rows:
    t = [float(x) * 1000 for x in times.split()]
    failed = n.startswith("HTTP")
    ok = max(t) < 1000 and not failed
    slow += not ok
    print(f"  {name:<24} {label[:36]:<36} {n:>8} {int(size):>10} {statistics.median(t):>10.1f} {max(t):>8.1f}  {'yes' if ok else 'NO'}")
print(f"\n  {len(rows)} filter sets, {len(rows) - slow} with every answer under 1 s, {slow} not")
PY

if [ "$EXPLAIN_SLOW" = 1 ]; then
  while IFS=$'\t' read -r name label n size times query <&3; do
    slowest=$(python3 -c "print(max(float(x) for x in '$times'.split()))")
    failed=0; case "$n" in HTTP*) failed=1 ;; esac
    [ "$failed" = 1 ] || python3 -c "import sys; sys.exit(0 if $slowest >= 1.0 else 1)" || continue
    args=$(python3 - "$query" <<'PY'
import sys, urllib.parse
p = dict(urllib.parse.parse_qsl(sys.argv[1]))
lit = lambda v: "NULL" if v is None else "'" + v.replace("'", "''") + "'"
period = p.get("period")
print(", ".join([f"{lit(period + '-01')}::date" if period else "NULL::date",
                 f"{lit(p.get('service'))}::text", f"{lit(p.get('region'))}::text",
                 f"{lit(p.get('plan'))}::text", f"{p.get('limit', 'NULL')}::int"]))
PY
)
    echo
    if [ "$failed" = 1 ]; then
      # It did not finish: the plan only (ANALYZE would run it to the end).
      echo "EXPLAIN SELECT * FROM report_$name($args);  -- $label: $n after $slowest s"
      psql_db -c "EXPLAIN SELECT * FROM report_$name($args)"
    else
      echo "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM report_$name($args);  -- $label, slowest $slowest s"
      psql_db -c "SET statement_timeout = '5min'" -c "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM report_$name($args)" || true
    fi
  done 3<"$work/results"
fi
