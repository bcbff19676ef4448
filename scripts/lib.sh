# Shared by scripts/test.sh, demo.sh, bench.sh and profile.sh: install and start what
# cdrflow needs on a fresh machine — PostgreSQL if it is down, the tansu Kafka-protocol
# broker if it is missing — and stop what we started on exit.
# shellcheck shell=bash

TANSU_VERSION=0.6.0
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_postgres() {
  if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then return 0; fi
  log "PostgreSQL is down; starting it"
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && return 0; sleep 1; done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
  return 1
}

ensure_tansu() {
  if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then return 0; fi
  log "Installing the tansu broker $TANSU_VERSION from crates.io (about 10 minutes, once)"
  cargo install tansu --locked --version "$TANSU_VERSION" --features libsql,dynostore >&2
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_broker STORAGE DIR: STORAGE is "sqlite" (correct offsets, survives restarts) or
# "memory" (fastest). Exports BROKER and BROKER_PID; logs go to DIR/tansu.log.
start_broker() {
  local storage=$1 dir=$2 port engine
  port=$(free_port)
  case "$storage" in
    # tansu reads sqlite://FILE relative to its working directory.
    sqlite) engine="sqlite://tansu.db" ;;
    memory) engine="memory://tansu/" ;;
    *) echo "unknown broker storage $storage" >&2; return 1 ;;
  esac
  log "Starting tansu ($storage) on 127.0.0.1:$port"
  (cd "$dir" && exec tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$engine" >"$dir/tansu.log" 2>&1) &
  BROKER_PID=$!
  BROKER="127.0.0.1:$port"
  export BROKER BROKER_PID
  for _ in $(seq 1 60); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then cat "$dir/tansu.log" >&2; return 1; fi
    sleep 0.5
  done
  echo "tansu did not listen on $port" >&2
  return 1
}

stop_broker() {
  if [ -n "${BROKER_PID:-}" ]; then kill "$BROKER_PID" 2>/dev/null; wait "$BROKER_PID" 2>/dev/null; fi
  BROKER_PID=
}

# For bench.sh and profile.sh, which run the same backlog through several builds, the
# spine among them.

# prepare_build BINARY DATABASE_URL TOPIC CUSTOMERS: the schema and the same generated
# customers (seed 1) that every run of the backlog on TOPIC uses, and the catalog if
# BINARY rates (the spine has no catalog command). Needs BROKER; nothing is produced.
prepare_build() {
  local bin=$1 url=$2 topic=$3 customers=$4
  "$bin" generate --brokers "$BROKER" --topic "$topic" --count 0 --seed 1 --customers "$customers" \
    --database-url "$url" >/dev/null 2>&1
  if "$bin" catalog --help >/dev/null 2>&1; then
    "$bin" catalog apply catalog/default.toml --database-url "$url" >/dev/null
  fi
}

# inflight_flags BINARY N: sets INFLIGHT to the flags that limit BINARY to N batches in
# flight, or to none for a build older than the flag.
inflight_flags() {
  INFLIGHT=()
  if "$1" run --help 2>/dev/null | grep -q -- --max-inflight; then INFLIGHT=(--max-inflight "$2"); fi
}
