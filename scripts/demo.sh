#!/usr/bin/env bash
# Set up and run the demo: start the local SegMetrics sandbox, pipe a recorded tap-hubspot run
# through target-segmetrics with the `hubspot` preset, then print what SegMetrics now holds.
# Needs only python3 (3.10+), pip and git.
#
#   scripts/demo.sh              sandbox on 127.0.0.1:8765, or on a free port if 8765 is taken
#   PORT=9000 scripts/demo.sh    on this port; stops at once if it is taken
#   DEMO_PYTHON=/path/python scripts/demo.sh
#                                use this interpreter, already set up (`pip install -e '.[sandbox]'`),
#                                instead of creating/updating .venv (the tests do this)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${DEMO_PYTHON:-}" ]; then
  PY="$DEMO_PYTHON"
else
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[sandbox]'
  PY=.venv/bin/python
fi
BIN="$(dirname "$PY")"

WORK="$(mktemp -d)"
SANDBOX_PID=""
cleanup() {
  if [ -n "$SANDBOX_PID" ]; then kill "$SANDBOX_PID" 2>/dev/null && wait "$SANDBOX_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Start the sandbox and wait for its "listening on <url>" line, or for it to exit (port taken).
# Nothing else is probed: whatever else listens on the port is never talked to.
start_sandbox() {  # $1: port; sets SANDBOX_PID and URL, or returns 1 with the sandbox's error in $WORK/sandbox.err
  : >"$WORK/sandbox.out"
  "$BIN/segmetrics-sandbox" --port "$1" --api-key demo-key --account-id demo --integration-id demo-int \
    >"$WORK/sandbox.out" 2>"$WORK/sandbox.err" &
  SANDBOX_PID=$!
  for _ in $(seq 1 300); do
    URL="$(sed -n 's/^SegMetrics sandbox listening on \(http:[^ ]*\).*/\1/p' "$WORK/sandbox.out")"
    if [ -n "$URL" ]; then return 0; fi
    if ! kill -0 "$SANDBOX_PID" 2>/dev/null; then
      SANDBOX_PID=""
      return 1
    fi
    sleep 0.1
  done
  echo "demo: the sandbox did not start within 30 s:" >&2
  cat "$WORK/sandbox.err" >&2
  exit 1
}

if [ -n "${PORT:-}" ]; then
  if ! start_sandbox "$PORT"; then
    cat "$WORK/sandbox.err" >&2
    echo "demo: port $PORT is taken by another program; run PORT=<another port> scripts/demo.sh, or leave PORT unset for a free one" >&2
    exit 1
  fi
elif ! start_sandbox 8765; then
  echo "demo: port 8765 is taken by another program; using a free port instead (PORT=<port> to choose one)"
  if ! start_sandbox 0; then
    cat "$WORK/sandbox.err" >&2
    exit 1
  fi
fi
echo "== SegMetrics sandbox on ${URL%/api/v1} (account demo, integration demo-int)"

cat > "$WORK/config.json" <<JSON
{
  "api_key": "demo-key",
  "account_id": "demo",
  "integration_id": "demo-int",
  "api_url": "$URL",
  "mappings": {"contacts": {"preset": "hubspot"}}
}
JSON

echo "== tap-hubspot (recorded run) | target-segmetrics: its log, then the STATE it passed on"
"$BIN/target-segmetrics" --config "$WORK/config.json" < tests/fixtures/hubspot/meltanolabs_contacts.singer
echo
echo "== What SegMetrics (the sandbox) now holds:"
"$PY" -m target_segmetrics.sandbox.show --url "$URL" --table
