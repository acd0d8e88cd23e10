#!/usr/bin/env bash
# Checks the README's run command end to end in a real browser: `make run` on a scratch data
# folder and port, then the browser test `make_run_portal_end_to_end` (headless Chromium)
# signs in as the admin it created, runs the tiny ShapesWorld loop on the seeded demo
# dataset, watches it to done, downloads the result and judges it. The portal is stopped at
# the end; its log is kept in the data folder.
#
# Usage: scripts/check-make-run.sh [PORT]   (CARGO_TARGET_DIR as for make)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-18080}
data=$(mktemp -d /tmp/vila2-make-run.XXXXXX)
log=$data/portal.log

make build
VILA2_BIND=127.0.0.1:$port setsid make run DATA="$data" > "$log" 2>&1 &
portal=$!
trap 'kill -- -$portal 2>/dev/null || true; wait $portal 2>/dev/null || true' EXIT

for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null 2>&1; then break; fi
  if ! kill -0 "$portal" 2>/dev/null; then
    echo "error: make run exited; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 1
done
curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null
echo "make run is serving on 127.0.0.1:$port (data in $data); its banner:"
sed -n '/vila2 portal/,/Stop with/p' "$log"

VILA2_PORTAL=http://127.0.0.1:$port VILA2_PORTAL_DATA=$data \
  cargo test --workspace --test browser_runs -- --ignored --exact make_run_portal_end_to_end
echo "make run: checked end to end in the browser (portal log: $log)"
