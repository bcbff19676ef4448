#!/usr/bin/env bash
# Scale run: an operator's two months through the whole job on this machine.
#
#   scripts/bench-scale.sh                                   # 1,000,000 customers, 10,000,000 records
#   SCALE_CUSTOMERS=20000 SCALE_EVENTS=200000 scripts/bench-scale.sh   # a quick smoke run
#
# 1. Creates SCALE_CUSTOMERS customers and produces SCALE_EVENTS generated records (the
#    generator's default anomaly mix) spread over the two months before the current one
#    to a 4-partition topic on tansu (sqlite storage).
# 2. Runs `cdrflow run` (default --memory-mb) over the backlog until idle; measures
#    records/s from its start to the last commit, its peak RSS (VmHWM), and checks the
#    reconciliation: `cdrflow stats` per outcome (accepted, duplicate, suspense,
#    rejected) against what the generator expected; the run stops if they differ.
# 3. `cdrflow bill` for each month (without the report refresh, timed apart), with its
#    time and peak RSS; then the report refresh after billing and one with nothing changed.
# 4. Every report of `cdrflow report --list`, for the older month where it takes a
#    period, each timed from process start to exit.
# 5. `cdrflow bill` for any earlier month the generator's out-of-order records reached,
#    then `cdrflow retention --keep-months 1 --archive DIR` (so the older month goes,
#    the later one stays) with its time, the archive's size and the database size before and
#    after. The daemon accepts usage of any age (--max-event-age-days 36500, so that any
#    day of the month can replay the backlog); retention is told that none older than a
#    day is to come (--max-event-age-days 1, so that the month just ended may go).
#
# Knobs: SCALE_CUSTOMERS (1000000), SCALE_EVENTS (10000000), SCALE_PARTITIONS (4),
# SCALE_BATCH_SIZE (5000), SCALE_DAEMON_ARGS (extra flags for `cdrflow run`),
# SCALE_DB (cdrflow_bench_scale; dropped at the start, kept at the end for inspection).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

CUSTOMERS=${SCALE_CUSTOMERS:-1000000}
EVENTS=${SCALE_EVENTS:-10000000}
PARTS=${SCALE_PARTITIONS:-4}
BATCH=${SCALE_BATCH_SIZE:-5000}
DB=${SCALE_DB:-cdrflow_bench_scale}
PG=postgres://postgres@127.0.0.1:5432
URL=$PG/$DB
export RUST_LOG=${RUST_LOG:-warn}
case "$DB" in *[!a-z0-9_]*) echo "SCALE_DB must be a plain lower-case name" >&2; exit 2 ;; esac
for v in CUSTOMERS EVENTS PARTS BATCH; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "SCALE_$v must be a positive whole number (got '${!v}')" >&2; exit 2; }
done

# The two months before the current one.
M1=$(date -u -d "$(date -u +%Y-%m-01) -2 month" +%Y-%m)
M2=$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%Y-%m)
DAYS=$(( ($(date -u -d "$(date -u +%Y-%m-01)" +%s) - $(date -u -d "$M1-01" +%s)) / 86400 ))

work=$(mktemp -d)
DAEMON_PID=
cleanup() {
  if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
  stop_broker || true
  rm -rf "$work"
}
trap cleanup EXIT

q() { psql -h 127.0.0.1 -U postgres -d "$DB" -X -Atqc "$1"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
FIGURES=()
figure() { FIGURES+=("$(printf '%-34s %s' "$1" "$2")"); log "$1: $2"; }

# timed NAME CMD...: runs CMD, keeps its output in $work/NAME.out, and sets SECS and
# PEAK_MB (the process's VmHWM, polled every 0.2 s).
timed() {
  local name=$1 t pid peak=0 v; shift
  t=$(now)
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
    sleep 0.2
  done
  if ! wait "$pid"; then
    echo "$name failed:" >&2; tail -20 "$work/$name.out" "$work/$name.err" >&2; exit 1
  fi
  SECS=$(since "$t")
  PEAK_MB=$((peak / 1024))
}

ensure_postgres
ensure_tansu
log "Building (release)"
cargo build --release --bins >&2
# A copy: another build replacing target/release/cdrflow must not pull it from under us.
cp target/release/cdrflow "$work/cdrflow"
BIN=$work/cdrflow
start_broker sqlite "$work"
log "Scale run: $CUSTOMERS customers, $EVENTS records over $M1 and $M2 ($DAYS days), load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- 1. customers and records
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
"$BIN" migrate --database-url "$URL" >/dev/null 2>&1
"$BIN" catalog apply catalog/default.toml --database-url "$URL" >/dev/null
topic=cdr.scale.$$
timed customers "$BIN" generate --brokers "$BROKER" --topic "$topic" --partitions "$PARTS" --count 0 --seed 1 \
  --customers "$CUSTOMERS" --database-url "$URL"
figure "customers created" "$(q "SELECT count(*) FROM customers") in $SECS s"
timed produce "$BIN" generate --brokers "$BROKER" --topic "$topic" --partitions "$PARTS" --count "$EVENTS" --seed 1 \
  --customers "$CUSTOMERS" --start "$M1-01" --days "$DAYS" --report "$work/gen.json"
figure "records produced" "$EVENTS in $SECS s"

# ---------------------------------------------------------------- 2. the daemon over the backlog
psql -h 127.0.0.1 -U postgres -Atqc CHECKPOINT >/dev/null
port=$(free_port)
start=$(now)
timed daemon env CDRFLOW_MAX_EVENT_AGE_DAYS=36500 "$BIN" run --brokers "$BROKER" --topic "$topic" --group scale \
  --database-url "$URL" --http "127.0.0.1:$port" --batch-size "$BATCH" --exit-when-idle 30 \
  --normalized-topic "$topic.normalized" --rejected-topic "$topic.rejected" ${SCALE_DAEMON_ARGS:-}
daemon_peak=$PEAK_MB
read -r consumed last_commit <<<"$(q "SELECT sum(records), extract(epoch FROM max(committed_at)) FROM committed_batches WHERE group_id = 'scale'" | tr '|' ' ')"
rate=$(python3 -c "print(f'{$consumed / ($last_commit - $start):,.0f}')")
figure "daemon over the backlog" "$consumed records, $rate records/s to the last commit"
figure "daemon peak RSS" "$daemon_peak MB"
# Reconciliation: what the daemon stored per outcome against what the generator expected.
"$BIN" stats --group scale --format json --database-url "$URL" >"$work/stats.json" || true
recon=$(python3 - "$work/gen.json" "$work/stats.json" <<'PY'
import json, sys
gen, stats = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
exp, got = gen["expected"], stats["totals"]
want = (gen["sent"], exp["accepted"], exp["duplicates"], exp["suspense"], sum(exp["rejected"].values()))
have = (got["consumed"], got["accepted"], got["duplicates"], got["suspense"], sum(got["rejected"].values()))
line = "{:,} consumed = {:,} accepted + {:,} duplicates + {:,} suspense + {:,} rejected".format(*have)
if have != want or not stats["balanced"]:
    sys.exit(f"reconciliation failed: {line}; the generator expected " + "{:,} = {:,} + {:,} + {:,} + {:,}".format(*want))
print(line + ", as the generator expected")
PY
)
figure "reconciliation" "$recon"

# ---------------------------------------------------------------- 3. billing
for m in "$M1" "$M2"; do
  timed "bill-$m" "$BIN" bill --period "$m" --database-url "$URL" --no-report-refresh
  figure "bill $m" "$(q "SELECT count(*) FROM invoices WHERE period = '$m-01'") invoices in $SECS s, peak RSS $PEAK_MB MB"
done
timed refresh "$BIN" report --refresh --database-url "$URL"
figure "report refresh after billing" "$SECS s"
timed refresh-again "$BIN" report --refresh --database-url "$URL"
figure "report refresh, nothing changed" "$SECS s"

# ---------------------------------------------------------------- 4. reports
slowest=0
while IFS=, read -r name filters _; do
  [ "$name" = name ] && continue
  args=()
  case " $filters " in *" period "*) args=(--period "$M1") ;; esac
  timed "report-$name" "$BIN" report "$name" "${args[@]}" --format csv --database-url "$URL"
  rows=$(($(wc -l <"$work/report-$name.out") - 1))
  figure "report $name" "$SECS s, $rows rows"
  slowest=$(python3 -c "print(max($slowest, $SECS))")
done < <("$BIN" report --list --format csv)
figure "slowest report" "$slowest s"

# ---------------------------------------------------------------- 5. retention
# The generator's out-of-order records reach back before the first month: their month is
# billed too, or retention would refuse it.
for m in $(q "SELECT DISTINCT to_char(period, 'YYYY-MM') FROM usage_events WHERE period < '$M1-01' ORDER BY 1"); do
  timed "bill-$m" "$BIN" bill --period "$m" --database-url "$URL" --no-report-refresh
  figure "bill $m (out-of-order usage)" "$(q "SELECT count(*) FROM usage_events WHERE period = '$m-01'") usage rows, $(q "SELECT count(*) FROM invoices WHERE period = '$m-01'") invoices in $SECS s"
done
size_before=$(q "SELECT pg_size_pretty(pg_database_size('$DB'))")
timed retention "$BIN" retention --keep-months 1 --max-event-age-days 1 --archive "$work/archive" --database-url "$URL"
cat "$work/retention.out" "$work/retention.err" >&2
archive_size=$(du -sh "$work/archive" | cut -f1)
left=$(q "SELECT count(*) FROM usage_events")
m1_left=$(q "SELECT count(*) FROM pg_class WHERE relname = 'usage_events_$(echo "$M1" | tr - _)'")
[ "$m1_left" = 0 ] || { echo "retention left the $M1 partition" >&2; exit 1; }
figure "retention up to $M1" "$SECS s, archive $archive_size, $left usage rows stay ($M2 and later)"
figure "database size" "$size_before before retention, $(q "SELECT pg_size_pretty(pg_database_size('$DB'))") after"

echo
echo "cdrflow scale run: $CUSTOMERS customers, $EVENTS records over $M1 and $M2"
printf '  %s\n' "${FIGURES[@]}"
