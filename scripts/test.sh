#!/usr/bin/env bash
# The whole test suite: unit tests, and integration tests against the real PostgreSQL
# and a real Kafka-protocol broker (tansu), both installed and started here if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_postgres
ensure_tansu
# pdftotext reads the rendered invoices back in the PDF tests.
if ! command -v pdftotext >/dev/null; then
  log "Installing poppler-utils (pdftotext)"
  apt-get update -qq && apt-get install -y -qq poppler-utils >/dev/null
fi
# stunnel terminates TLS in front of tansu for the Kafka SSL tests (tansu's own TLS
# listener is not wired in the version used).
if ! command -v stunnel4 >/dev/null; then
  log "Installing stunnel4"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends stunnel4 >/dev/null
fi
# A real Prometheus evaluates every PromQL expression of the Grafana dashboards.
if ! command -v prometheus >/dev/null; then
  log "Installing Prometheus"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# The dashboard's browser tests: Debian's Chromium, driven by playwright-core from npm
# (which downloads no browser of its own).
if [ ! -x /usr/bin/chromium ]; then
  log "Installing Chromium"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
  log "Installing Node.js and npm"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  log "Installing playwright-core for the browser tests (npm ci)"
  npm ci --prefix tests/browser --no-audit --no-fund >/dev/null
fi
work=$(mktemp -d)
trap 'stop_broker; rm -rf "$work"' EXIT
# sqlite storage: the tests check offsets, which tansu's memory engine reports wrongly.
start_broker sqlite "$work"

export CDRFLOW_TEST_BROKERS=$BROKER
export CDRFLOW_TEST_DATABASE_URL=${CDRFLOW_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
log "Running the tests (broker $BROKER)"
# One release build serves the unit and integration tests, with the test-only panics of
# the supervision tests (the `fault-injection` feature; the demo below builds without it).
# Integration tests run one at a time: each drives a daemon, a broker and Postgres on a
# 2-core machine.
cargo test --release --features fault-injection --lib --bins
cargo test --release --features fault-injection --test integration -- --test-threads=1
# The demo as a smoke test: the whole job end to end must reconcile and exit 0. Its own
# broker, database and output folder, so a developer's demo is left alone.
log "Smoke test: scripts/demo.sh with 20,000 records and 1,000 customers"
DEMO_RECORDS=20000 DEMO_CUSTOMERS=1000 DEMO_OUT="$work/demo" \
  CDRFLOW_DEMO_DATABASE_URL="${CDRFLOW_TEST_DATABASE_URL%/*}/cdrflow_demo_smoke" \
  bash scripts/demo.sh
