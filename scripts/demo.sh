#!/usr/bin/env bash
# The whole job end to end on a fresh machine, in one command: start PostgreSQL and a
# Kafka-protocol broker (installing what is missing), build cdrflow, and run
# `cdrflow demo` on a fresh database — the shipped catalog, customers, a month of CDRs
# with anomalies, the daemon until the topic is drained, suspense resolved, the month
# closed into invoices (Postgres, JSON, PDF) — which prints a summary a billing manager
# reads (reconciliation, revenue by service and region, invoices, top customers,
# throughput) and where to look. It exits non-zero if the records do not reconcile.
#
# Knobs: DEMO_RECORDS (default 200000), DEMO_CUSTOMERS (default 5000), DEMO_OUT (the
# output folder, default out), DEMO_HTTP (the daemon's address, default a free port on
# 127.0.0.1), DEMO_SERVE=1 (keep the daemon and its endpoints up after the summary, until
# Ctrl-C), CDRFLOW_DEMO_DATABASE_URL (dropped and recreated: its name must contain "demo").
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_postgres
ensure_tansu
log "Building cdrflow (release)"
cargo build --release --bins >&2
work=$(mktemp -d)
trap 'stop_broker; rm -rf "$work"' EXIT
start_broker sqlite "$work"

serve=()
if [ "${DEMO_SERVE:-0}" = 1 ]; then serve=(--serve); fi
log "cdrflow demo"
# The URL goes through the environment, not the command line that `ps` shows. The
# daemon logs warnings only: the demo shows its own progress.
CDRFLOW_DATABASE_URL=${CDRFLOW_DEMO_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/cdrflow_demo} \
RUST_LOG=${RUST_LOG:-warn} \
  target/release/cdrflow demo --fresh --brokers "$BROKER" \
    --records "${DEMO_RECORDS:-200000}" --customers "${DEMO_CUSTOMERS:-5000}" \
    --out "${DEMO_OUT:-out}" --http "${DEMO_HTTP:-127.0.0.1:$(free_port)}" "${serve[@]}"
