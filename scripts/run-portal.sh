#!/usr/bin/env bash
# `make run`: the portal on the embedded default (SQLite in vila2-data/, objects beside it),
# served on 127.0.0.1:8080, with an admin login that is created once and then reused:
# admin@localhost, its password generated on first start into vila2-data/admin-password (0600).
#
# Usage: scripts/run-portal.sh VILA2_BINARY [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
vila2=$1
data=${2:-vila2-data}
bind=${VILA2_BIND:-127.0.0.1:8080}
email=admin@localhost
pwfile=$data/admin-password

mkdir -p "$data"
if [ -s "$pwfile" ]; then
  # Already made: make sure the account exists (e.g. after the database was deleted).
  "$vila2" admin create-user --data-dir "$data" --email "$email" --admin --password-stdin \
    --exists-ok < "$pwfile" > /dev/null
else
  password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
  if ! printf '%s' "$password" | "$vila2" admin create-user --data-dir "$data" \
       --email "$email" --admin --password-stdin > /dev/null; then
    echo "error: could not create $email; if it exists from an earlier run whose $pwfile was" >&2
    echo "deleted, remove $data/vila2.db (or use another data directory) and run again" >&2
    exit 1
  fi
  (umask 077 && printf '%s\n' "$password" > "$pwfile.tmp" && mv "$pwfile.tmp" "$pwfile")
fi

# Once: a demo team with a small ShapesWorld dataset for the admin, to start the tiny loop on.
"$vila2" admin seed-demo --data-dir "$data" --email "$email"
# Runs use the tiny preset (seconds on a CPU) unless VILA2_RUN_PRESET says otherwise (mini).
export VILA2_RUN_PRESET=${VILA2_RUN_PRESET:-tiny}

cat <<MSG

  vila2 portal: http://$bind/
  sign in as   $email
  password     $(cat "$pwfile")   (stored in $pwfile, mode 0600)
  API:         curl -s -X POST http://$bind/api/v1/login -H 'content-type: application/json' \\
                 -d '{"email": "$email", "password": "…"}'   # → {"token": …}
  Runs:        the dashboard's team "demo" has the dataset shapes-demo: start a run there
               (preset $VILA2_RUN_PRESET; VILA2_RUN_PRESET=mini for the minutes-long demo).
  Stop with Ctrl-C; the data stays in $data/.

MSG
exec "$vila2" serve --data-dir "$data" --bind "$bind"
