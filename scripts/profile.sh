#!/usr/bin/env bash
# CPU per record of each part of the pipeline, for one or more builds over the same backlog:
# the daemon, Postgres (every server process, including backends that exited) and the
# broker. On a machine whose cores are all busy, throughput follows the sum of the three,
# so this says where a build's time goes when `bench.sh` says only how fast it was.
#
# Usage: scripts/profile.sh [BINARY ...]
#   With no argument: this build (target/release/cdrflow) and the baseline bench.sh
#   built last (target/baseline/release/cdrflow, if present), alternating.
# Knobs: PROFILE_RECORDS (default 1,000,000), PROFILE_CUSTOMERS (default 100,000),
# PROFILE_ROUNDS (default 1: every binary runs the backlog once per round, in the order
# given). If Postgres has pg_stat_statements in shared_preload_libraries, the costliest
# statements of each run are printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The backlog is dated September 2026 whatever the day it runs: no record is too old.
# (An environment variable, which a baseline build older than the setting ignores.)
export CDRFLOW_MAX_EVENT_AGE_DAYS=36500

N=${PROFILE_RECORDS:-1000000}
CUSTOMERS=${PROFILE_CUSTOMERS:-100000}
ROUNDS=${PROFILE_ROUNDS:-1}
check_count() { # check_count NAME VALUE
  if ! [[ "$2" =~ ^[1-9][0-9]*$ ]]; then
    echo "$1 must be a whole number, 1 or more (got '$2')" >&2
    exit 2
  fi
}
check_count PROFILE_RECORDS "$N"
check_count PROFILE_CUSTOMERS "$CUSTOMERS"
check_count PROFILE_ROUNDS "$ROUNDS"
PG=postgres://postgres@127.0.0.1:5432
export PGOPTIONS="-c client_min_messages=warning"

ensure_postgres
ensure_tansu
if [ $# = 0 ]; then
  log "Building (release)"
  cargo build --release --bins >&2
  set -- target/release/cdrflow
  [ -x target/baseline/release/cdrflow ] && set -- "$@" target/baseline/release/cdrflow
fi
for bin in "$@"; do
  if [ ! -x "$bin" ]; then
    echo "$bin is not an executable cdrflow build" >&2
    exit 2
  fi
done

q() { psql -h 127.0.0.1 -U postgres -d "$1" -Atqc "$2"; }
# Postgres' CPU is read from /proc: the postmaster's own and its children's, plus what it
# reaped (backends that ended). That needs the server on this machine and its data
# directory readable.
datadir=$(q postgres "SHOW data_directory")
if ! postmaster=$(head -1 "$datadir/postmaster.pid" 2>/dev/null) || [ ! -r "/proc/$postmaster/stat" ]; then
  echo "cannot read the postmaster's pid from $datadir/postmaster.pid: run this as a user who can (root or postgres)" >&2
  exit 2
fi
pgss=$(q postgres "SHOW shared_preload_libraries" | grep -c pg_stat_statements || true)

work=$(mktemp -d)
trap 'stop_broker; rm -rf "$work"' EXIT
# sqlite storage: the daemon checks stored offsets against the broker's log end, which
# tansu's memory engine reports wrongly.
start_broker sqlite "$work"
topic=cdr.profile.$$

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  local t p
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
  for p in $(pgrep -P "$postmaster"); do t=$((t + $(ticks "$p"))); done
  echo "$t"
}
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
hz=$(getconf CLK_TCK)

log "Producing $N records to $topic (4 partitions, $CUSTOMERS customers)"
q postgres "DROP DATABASE IF EXISTS cdrflow_profile_gen WITH (FORCE)"
# This build generates the backlog whatever builds are profiled.
[ -x target/release/cdrflow ] || cargo build --release --bin cdrflow >&2
target/release/cdrflow migrate --database-url "$PG/cdrflow_profile_gen" >/dev/null 2>&1
target/release/cdrflow generate --brokers "$BROKER" --topic "$topic" --partitions 4 --count "$N" --seed 1 \
  --customers "$CUSTOMERS" --database-url "$PG/cdrflow_profile_gen" --start 2026-09-01 --days 30 >/dev/null 2>"$work/gen.log"
q postgres "DROP DATABASE cdrflow_profile_gen WITH (FORCE)"

run=0
for round in $(seq 1 "$ROUNDS"); do
  for bin in "$@"; do
    run=$((run + 1))
    db=cdrflow_profile_$run
    q postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)"
    prepare_build "$bin" "$PG/$db" "$topic" "$CUSTOMERS"
    [ "$pgss" = 1 ] && q "$db" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()" >/dev/null
    inflight_flags "$bin" 32
    q postgres CHECKPOINT
    # Idle for 15 s: the sqlite broker's first fetch of a large topic can take longer than
    # a few seconds. Rates are measured to the last commit.
    pg0=$(pg_ticks); broker0=$(ticks "$BROKER_PID"); steal0=$(steal_ticks); start=$(date +%s.%N)
    if ! /usr/bin/time -f "%U %S" -o "$work/time" env RUST_LOG=warn "$bin" run --brokers "$BROKER" --topic "$topic" \
      --group "profile$run" --database-url "$PG/$db" --http 127.0.0.1:0 --batch-size 5000 --committers 2 "${INFLIGHT[@]}" \
      --exit-when-idle 15 --normalized-topic "$topic.normalized$run" --rejected-topic "$topic.rejected$run" 2>"$work/daemon.log"; then
      echo "$bin failed:" >&2; tail -20 "$work/daemon.log" >&2; exit 1
    fi
    # Backends end a moment after the daemon; their CPU counts once the postmaster reaps them.
    sleep 2
    pg1=$(pg_ticks); broker1=$(ticks "$BROKER_PID"); steal1=$(steal_ticks)
    read -r user sys <"$work/time"
    read -r records last <<<"$(q "$db" "SELECT sum(records), extract(epoch FROM max(committed_at)) FROM committed_batches" | tr '|' ' ')"
    python3 - "$bin" "$round" "$records" "$start" "$last" "$user" "$sys" "$((pg1 - pg0))" "$((broker1 - broker0))" "$((steal1 - steal0))" "$hz" <<'PY'
import sys
bin, rnd, n, start, last, user, sys_, pg, broker, steal, hz = sys.argv[1:]
n, wall, hz = int(n), float(last) - float(start), int(hz)
daemon = (float(user) + float(sys_)) / n * 1e6
pg, broker = int(pg) / hz / n * 1e6, int(broker) / hz / n * 1e6
print(f"round {rnd}  {bin}: {n / wall:,.0f} records/s; CPU per record: daemon {daemon:.1f} µs, "
      f"Postgres {pg:.1f} µs, broker {broker:.1f} µs, together {daemon + pg + broker:.1f} µs; "
      f"steal {int(steal) / hz / wall:.0%} of a core")
PY
    if [ "$pgss" = 1 ]; then
      q "$db" "SELECT lpad(round(total_exec_time)::text, 7) || ' ms ' || lpad(calls::text, 5) || ' calls '
                      || lpad(rows::text, 8) || ' rows  ' || left(regexp_replace(query, '\s+', ' ', 'g'), 80)
                 FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                ORDER BY total_exec_time DESC LIMIT 8"
    fi
    q postgres "DROP DATABASE $db WITH (FORCE)"
  done
done
