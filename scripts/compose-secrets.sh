#!/bin/sh
# The secret files docker-compose.yml passes to its services, made once with random
# values: `scripts/compose-secrets.sh` (or `scripts/compose-secrets.sh DIR`, default
# ./secrets). A file that exists already is kept, so running it again changes nothing;
# delete a file to get a new value (and `docker compose down` first: Postgres keeps the
# password it started with).
#
#   postgres_password       the database owner's password (the postgres service)
#   database_url            cdrflow's whole database URL, with that password in it
#   api_token               the bearer token of cdrflow's API and dashboard
#   grafana_db_password     Grafana's read-only database login (cdrflow_reader)
#   grafana_admin_password  Grafana's `admin` user
#
# The directory is readable by its owner only; the files in it are world-readable so
# that the containers' own users (cdrflow, grafana, postgres) can read them where
# compose mounts them. secrets/ is in .gitignore: these values never go to git.
set -eu
dir=${1:-secrets}
mkdir -p "$dir"
chmod 700 "$dir"

# 32 random bytes as hex: safe in a URL and a shell, no quoting needed.
random() {
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# write NAME VALUE: the file NAME with VALUE and no trailing newline, unless it exists.
write() {
  if [ ! -e "$dir/$1" ]; then
    printf '%s' "$2" >"$dir/$1"
    chmod 644 "$dir/$1"
    echo "Wrote $dir/$1."
  fi
}

write postgres_password "$(random)"
write database_url "postgres://cdrflow:$(cat "$dir/postgres_password")@postgres:5432/cdrflow"
write api_token "$(random)"
write grafana_db_password "$(random)"
write grafana_admin_password "$(random)"
