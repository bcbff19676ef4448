#!/usr/bin/env bash
# The chaos test as a soak: several `cdrflow run` instances in one consumer group under
# SIGKILLs and graceful restarts, a broker restart, a Postgres restart and a Postgres
# outage while a stream arrives, compared with one uninterrupted instance. Prints every
# fault as it is injected, then the comparison table by table; exits non-zero on any
# difference. The test runs its own broker and Postgres cluster.
#
# Usage: scripts/chaos.sh
#   Knobs (environment), soak defaults in brackets: CHAOS_FAULTS [100], CHAOS_RECORDS
#   [300000], CHAOS_SEED [random; printed, set it to repeat a schedule], CHAOS_INSTANCES
#   [3], and the other CHAOS_* knobs listed in tests/integration/chaos.rs.
#   The full output is also kept in target/chaos/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_postgres
ensure_tansu

export CHAOS_FAULTS=${CHAOS_FAULTS:-100}
export CHAOS_RECORDS=${CHAOS_RECORDS:-300000}
export CHAOS_INSTANCES=${CHAOS_INSTANCES:-3}
# The group needs longer to catch up after a long soak on two cores.
export CHAOS_SETTLE_SECS=${CHAOS_SETTLE_SECS:-900}
export CDRFLOW_TEST_DATABASE_URL=${CDRFLOW_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}

mkdir -p target/chaos
out="target/chaos/chaos-$(date -u +%Y%m%dT%H%M%SZ).log"
log "Chaos soak: $CHAOS_FAULTS instance faults, $CHAOS_RECORDS records, $CHAOS_INSTANCES instances (log: $out)"
cargo build --release --tests >&2
set +e
cargo test --release --test integration -- --exact \
  chaos::three_instances_under_kills_restarts_and_outages_end_equal_to_one_uninterrupted_instance \
  --nocapture --test-threads=1 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -eq 0 ]; then log "Chaos soak passed"; else log "Chaos soak FAILED (see $out)"; fi
exit "$status"
