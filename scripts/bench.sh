#!/usr/bin/env bash
# Throughput, latency and memory of the pipeline against the local broker and Postgres.
#
# Backlog: produce N records (default 1,000,000), run the daemon from the start until
# idle, and measure in the same run the two limits it cannot beat on this machine: a bare
# rdkafka consumer reading the same topic, and a bare bulk insert of the same usage rows
# into the same table. Steady: produce at half the measured throughput for 60 s while
# the daemon runs, and report produce-to-commit latency percentiles.
#
# Each stage costs something: the same backlog is also run by an earlier build
# (BENCH_BASELINE, a git revision, default 08bee36: rating without the billing
# accumulators; 382176c is the spine without rating; built once into target/baseline;
# "none" skips it), so that both figures come from the same run.
#
# Billing: once the backlog is committed, `cdrflow bill` closes September for all
# BENCH_CUSTOMERS customers (default 100,000), then writes every invoice as JSON and PDF
# (timed apart); the report refresh `bill` does after issuing is timed apart too
# (`bill --no-report-refresh`, then `cdrflow report --refresh`).
#
# Knobs: BENCH_RECORDS, BENCH_STEADY_SECS, BENCH_PARTITIONS, BENCH_BATCH_SIZE, BENCH_COMMITTERS,
# BENCH_MAX_INFLIGHT (default 32, cdrflow's default; the baseline gets the same),
# BENCH_ROUNDS (default 1: more rounds run the backlog again through both builds, in
# alternating order, and print every round's ratio and their median), and
# BENCH_DAEMON_ARGS (extra flags for `cdrflow run`, e.g. --no-publish). BENCH_STEADY_RATE=R
# skips the backlog phase and runs only the steady one at R records/s.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The backlog is dated September 2026 whatever the day it runs: no record is too old.
# (An environment variable, which a baseline build older than the setting ignores.)
export CDRFLOW_MAX_EVENT_AGE_DAYS=36500

N=${BENCH_RECORDS:-1000000}
STEADY_SECS=${BENCH_STEADY_SECS:-60}
PARTS=${BENCH_PARTITIONS:-4}
BATCH=${BENCH_BATCH_SIZE:-5000}
CUSTOMERS=${BENCH_CUSTOMERS:-100000}
COMMITTERS=${BENCH_COMMITTERS:-2}
MAX_INFLIGHT=${BENCH_MAX_INFLIGHT:-32}
BASELINE=${BENCH_BASELINE:-08bee36}
ROUNDS=${BENCH_ROUNDS:-1}
if ! [[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]]; then
  echo "BENCH_ROUNDS must be a whole number of rounds, 1 or more (got '$ROUNDS')" >&2
  exit 2
fi
PG=postgres://postgres@127.0.0.1:5432

ensure_postgres
ensure_tansu
log "Building (release)"
cargo build --release --bins >&2
BIN=target/release/cdrflow
LIMITS=target/release/cdrflow-bench
BASE_BIN=
if [ "$BASELINE" != none ] && [ -z "${BENCH_STEADY_RATE:-}" ]; then
  log "Building the baseline $BASELINE into target/baseline"
  src=target/baseline-src/$BASELINE
  if [ ! -f "$src/Cargo.toml" ]; then
    mkdir -p "$src" && git archive "$BASELINE" | tar -x -C "$src"
  fi
  CARGO_TARGET_DIR=$PWD/target/baseline cargo build --release --bin cdrflow --manifest-path "$src/Cargo.toml" >&2
  BASE_BIN=target/baseline/release/cdrflow
fi

work=$(mktemp -d)
trap 'stop_broker; rm -rf "$work"' EXIT
# sqlite storage: the daemon checks each partition's stored offset against the broker's
# log end, which tansu's memory engine reports wrongly (partitions would be held).
start_broker sqlite "$work"

psql_q() { psql -h 127.0.0.1 -U postgres -d "$1" -Atqc "$2"; }
quiesce() {
  psql_q postgres "CHECKPOINT" >/dev/null
  for _ in $(seq 1 120); do
    [ "$(psql_q postgres "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")" = 0 ] && break
    sleep 1
  done
  psql_q postgres "CHECKPOINT" >/dev/null
}
fresh_db() { psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $1 WITH (FORCE)" >/dev/null; }

# run_daemon TOPIC DB GROUP IDLE [BINARY]: runs cdrflow until idle; sets START (epoch s) and PEAK_RSS_KB.
# The backlog's idle period is 15 s: the sqlite broker's first fetch of a large topic can
# take longer than a few seconds, and the idle clock runs from the start. Throughput is
# measured to the last commit, so the idle tail does not count.
run_daemon() {
  local topic=$1 db=$2 group=$3 idle=$4 bin=${5:-$BIN} port
  port=$(free_port)
  # Both builds run with the same limit on batches in flight.
  inflight_flags "$bin" "$MAX_INFLIGHT"
  # Flush what earlier phases left dirty and let autovacuum finish with their tables, so
  # that neither lands in the middle of this phase (it did: an autovacuum of the insert
  # limit's 870k rows ran during the first daemon phase and not the second).
  quiesce
  START=$(date +%s.%N)
  RUST_LOG=warn "$bin" run --brokers "$BROKER" --topic "$topic" --group "$group" --database-url "$PG/$db" \
    --http "127.0.0.1:$port" --batch-size "$BATCH" --committers "$COMMITTERS" "${INFLIGHT[@]}" --exit-when-idle "$idle" \
    --normalized-topic "$topic.normalized" --rejected-topic "$topic.rejected" ${BENCH_DAEMON_ARGS:-} 2>"$work/daemon-$group.log" &
  DAEMON_PID=$!
  PEAK_RSS_KB=0
  (
    peak=0
    while kill -0 "$DAEMON_PID" 2>/dev/null; do
      v=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status" 2>/dev/null || true)
      [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v && echo "$peak" >"$work/rss-$group"
      sleep 0.2
    done
  ) &
  RSS_WATCH=$!
}

finish_daemon() {
  local group=$1
  if ! wait "$DAEMON_PID"; then
    echo "daemon failed:" >&2; tail -20 "$work/daemon-$group.log" >&2; exit 1
  fi
  wait "$RSS_WATCH" 2>/dev/null || true
  PEAK_RSS_KB=$(cat "$work/rss-$group" 2>/dev/null || echo 0)
}

if [ -z "${BENCH_STEADY_RATE:-}" ]; then
# ---------------------------------------------------------------- backlog
topic=cdr.bench.$$
db=cdrflow_bench
fresh_db $db
fresh_db ${db}_insert
fresh_db ${db}_spine
"$BIN" migrate --database-url "$PG/$db" >/dev/null 2>&1
"$BIN" catalog apply catalog/default.toml --database-url "$PG/$db" >/dev/null
log "Producing $N records to $topic ($PARTS partitions)"
"$BIN" generate --brokers "$BROKER" --topic "$topic" --partitions "$PARTS" --count "$N" --seed 1 \
  --customers $CUSTOMERS --database-url "$PG/$db" --start 2026-09-01 --days 30 --report "$work/gen.json" >/dev/null 2>"$work/gen.log"
grep -o 'sent .*' "$work/gen.log" >&2

log "Limit 1: bare consumer"
consume_json=$("$LIMITS" consume --brokers "$BROKER" --topic "$topic" --count "$N")
echo "$consume_json" >&2
log "Limit 2: bare bulk insert of the same usage rows (batch $BATCH, $COMMITTERS connections like the daemon's committers)"
insert_json=$("$LIMITS" insert --database-url "$PG/${db}_insert" --count "$N" --seed 1 --customers $CUSTOMERS \
  --batch-size "$BATCH" --connections "$COMMITTERS" --start 2026-09-01 --days 30 2>/dev/null)
echo "$insert_json" >&2
fresh_db ${db}_insert

log "cdrflow run over the backlog"
run_daemon "$topic" "$db" bench 15
finish_daemon bench
backlog=$(psql_q $db "SELECT sum(records), extract(epoch FROM max(committed_at)), extract(epoch FROM min(committed_at)) FROM committed_batches")
backlog_rss=$PEAK_RSS_KB
backlog_start=$START

log "Billing September for every customer"
quiesce
# The report refresh that `cdrflow bill` does after issuing is timed apart: it recomputes
# the months changed since the last refresh (here the first one, so every month).
bill_out=$("$BIN" bill --period 2026-09 --database-url "$PG/$db" --no-report-refresh 2>/dev/null)
echo "$bill_out" >&2
refresh_out=$("$BIN" report --refresh --database-url "$PG/$db" 2>&1 | tail -1)
echo "$refresh_out" >&2
refresh_secs=$(echo "$refresh_out" | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*' || echo nan)
files_out=$("$BIN" bill --period 2026-09 --database-url "$PG/$db" --out "$work/invoices" 2>/dev/null | tail -1)
echo "$files_out" >&2
invoices=$(psql_q $db "SELECT count(*) || '|' || max(seq) || '|' || count(DISTINCT seq) FROM invoices WHERE period = '2026-09-01'")
bill_secs=$(echo "$bill_out" | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*')
files_secs=$(echo "$files_out" | grep -o 'in [0-9.]* s' | grep -o '[0-9.]*')
pdf_bytes=$(du -sb "$work/invoices" | cut -f1)
rm -rf "$work/invoices"

spine="|||"
if [ -n "$BASE_BIN" ]; then
  log "Baseline $BASELINE over the same backlog"
  prepare_build "$BASE_BIN" "$PG/${db}_spine" "$topic" "$CUSTOMERS"
  run_daemon "$topic" "${db}_spine" bench 15 "$BASE_BIN"
  finish_daemon bench
  spine=$(psql_q ${db}_spine "SELECT sum(records), extract(epoch FROM max(committed_at)), $START FROM committed_batches")
  spine="$spine|$PEAK_RSS_KB"
fi

# Further rounds (BENCH_ROUNDS): the same backlog again into fresh databases, the baseline
# first in even rounds, so that a machine that slows down or speeds up during the run
# does not always favour the build that ran first. Each round prints its own ratio.
rounds=""
if [ -n "$BASE_BIN" ]; then
  # backlog_rate DB: records/s from the daemon's start ($START) to its last commit.
  backlog_rate() { psql_q "$1" "SELECT round(sum(records) / (extract(epoch FROM max(committed_at)) - $START)) FROM committed_batches"; }
  run_build() { # run_build BINARY DB: a fresh database with the same customers, then the backlog
    local bin=$1 rdb=$2
    fresh_db "$rdb"
    prepare_build "$bin" "$PG/$rdb" "$topic" "$CUSTOMERS"
    # Only the rate goes to stdout, which the caller captures.
    run_daemon "$topic" "$rdb" bench 15 "$bin" >/dev/null
    finish_daemon bench >/dev/null
    backlog_rate "$rdb"
    fresh_db "$rdb"
  }
  for round in $(seq 2 "$ROUNDS"); do
    if [ $((round % 2)) = 0 ]; then
      log "Round $round: baseline $BASELINE, then this build"
      b=$(run_build "$BASE_BIN" ${db}_round); t=$(run_build "$BIN" ${db}_round)
    else
      log "Round $round: this build, then baseline $BASELINE"
      t=$(run_build "$BIN" ${db}_round); b=$(run_build "$BASE_BIN" ${db}_round)
    fi
    echo "round $round: this build $t, baseline $b records/s" >&2
    rounds="$rounds $t/$b"
  done
fi

read -r consumed last_commit first_commit <<<"$(echo "$backlog" | tr '|' ' ')"
rate=$(python3 -c "print(int($consumed / ($last_commit - $backlog_start) / 2))")
else
  rate=$BENCH_STEADY_RATE
fi

# ---------------------------------------------------------------- steady
count=$((rate * STEADY_SECS))
stopic=cdr.steady.$$
sdb=cdrflow_bench_steady
fresh_db $sdb
"$BIN" migrate --database-url "$PG/$sdb" >/dev/null 2>&1
"$BIN" catalog apply catalog/default.toml --database-url "$PG/$sdb" >/dev/null
log "Steady: $rate records/s for ${STEADY_SECS}s while the daemon runs"
"$BIN" generate --brokers "$BROKER" --topic "$stopic" --partitions "$PARTS" --count 0 --seed 2 --customers $CUSTOMERS \
  --database-url "$PG/$sdb" --start 2026-09-01 --days 30 >/dev/null 2>&1
# Idle 20 s: building a large customer pool delays the generator's first record.
run_daemon "$stopic" $sdb steady 20
sleep 5
"$BIN" generate --brokers "$BROKER" --topic "$stopic" --count "$count" --rate "$rate" --seed 2 --customers $CUSTOMERS \
  --start 2026-09-01 --days 30 >/dev/null 2>"$work/steady-gen.log"
finish_daemon steady
steady_rss=$PEAK_RSS_KB
latency=$(psql_q $sdb "
  SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY l)::numeric * 1000, 1),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY l)::numeric * 1000, 1),
         round(max(l)::numeric * 1000, 1), count(*)
    FROM (SELECT extract(epoch FROM b.committed_at - u.kafka_ts) AS l
            FROM usage_events u
            CROSS JOIN LATERAL (SELECT committed_at FROM committed_batches b
                                 WHERE b.group_id = 'steady' AND b.topic = u.src_topic AND b.partition = u.src_partition
                                   AND b.from_offset <= u.src_offset
                                 ORDER BY b.from_offset DESC LIMIT 1) b) x")

if [ -n "${BENCH_STEADY_RATE:-}" ]; then
  echo "steady: $rate records/s offered; latency produce->commit p50|p99|max ms|records: $latency; peak RSS $((steady_rss / 1024)) MB"
  exit 0
fi
python3 - "$N" "$backlog" "$backlog_start" "$backlog_rss" "$consume_json" "$insert_json" "$latency" "$steady_rss" "$rate" "$work/gen.json" "$spine" "$BASELINE" "$invoices|$bill_secs|$files_secs|$pdf_bytes|$refresh_secs" "$CUSTOMERS" "$rounds" <<'PY'
import json, statistics, sys
n, backlog, start, rss, consume, insert, latency, steady_rss, rate, gen, spine, baseline, bill, customers, rounds = sys.argv[1:]
consumed, last, first = (float(x) for x in backlog.split("|"))
start, rss, steady_rss = float(start), int(rss), int(steady_rss)
consume, insert, gen = json.loads(consume), json.loads(insert), json.load(open(gen))
accepted_share = gen["expected"]["accepted"] / gen["sent"]
wall = consumed / (last - start)
steady = consumed / (last - first) if last > first else wall
insert_records = insert["rows_per_sec"] / accepted_share
lower = min(consume["records_per_sec"], insert_records)
p50, p99, mx, rows = latency.split("|")
print()
print("cdrflow benchmark")
print(f"  backlog            {int(consumed):,} records")
print(f"  cdrflow            {wall:,.0f} records/s end to end (daemon start to last commit)")
print(f"                     {steady:,.0f} records/s between first and last commit")
print(f"  bare consumer      {consume['records_per_sec']:,.0f} records/s")
print(f"  bare bulk insert   {insert['rows_per_sec']:,.0f} usage rows/s = {insert_records:,.0f} records/s at {accepted_share:.1%} accepted")
print(f"  ratio              {wall / lower:.0%} of the lower limit ({'consumer' if lower == consume['records_per_sec'] else 'insert'})")
if spine != "|||":
    s_records, s_last, s_start, s_rss = (float(x) for x in spine.split("|"))
    s_wall = s_records / (s_last - s_start)
    print(f"  baseline {baseline:<9} {s_wall:,.0f} records/s end to end, same backlog")
    print(f"  this build         {wall / s_wall:.0%} of the baseline's throughput")
    ratios = [wall / s_wall]
    for i, r in enumerate(rounds.split(), start=2):
        t, b = (float(x) for x in r.split("/"))
        ratios.append(t / b)
        order = "baseline first" if i % 2 == 0 else "this build first"
        print(f"  round {i:<2}           {t:,.0f} against {b:,.0f} records/s ({order}): {t / b:.0%}")
    if len(ratios) > 1:
        print(f"  over {len(ratios)} rounds      median {statistics.median(ratios):.0%}, "
              f"lowest {min(ratios):.0%}, highest {max(ratios):.0%}")
print(f"  peak RSS backlog   {rss / 1024:.0f} MB")
if spine != "|||":
    print(f"  peak RSS baseline  {s_rss / 1024:.0f} MB, same backlog")
count, max_seq, distinct, bill_secs, files_secs, files_bytes, refresh_secs = bill.split("|")
print(f"  bill 2026-09       {int(count):,} invoices for {int(customers):,} customers in {float(bill_secs):.1f} s "
      f"(numbers 1..{max_seq}, {int(distinct):,} distinct)")
print(f"  report refresh     {float(refresh_secs):.1f} s after billing (part of `cdrflow bill` unless --no-report-refresh)")
print(f"  invoice files      {int(count):,} JSON + PDF written in {float(files_secs):.1f} s "
      f"({float(files_secs) / max(int(count), 1) * 1000:.2f} ms an invoice, {int(files_bytes) / max(2 * int(count), 1) / 1024:.1f} KiB a file)")
print(f"  steady             {int(rate):,} records/s offered; latency produce->commit p50 {p50} ms, p99 {p99} ms, max {mx} ms over {int(rows):,} records")
print(f"  peak RSS steady    {steady_rss / 1024:.0f} MB")
PY
