#!/usr/bin/env bash
# Set up and run the demo: start the local SegMetrics sandbox, pipe a recorded tap-hubspot run
# through target-segmetrics with the `hubspot` preset, then print what SegMetrics now holds.
# Needs only python3 (3.10+), pip and git. Usage: scripts/demo.sh   (PORT=8765 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${PORT:-8765}"

if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[sandbox]'

.venv/bin/segmetrics-sandbox --port "$PORT" --api-key demo-key --account-id demo --integration-id demo-int &
SANDBOX_PID=$!
trap 'kill "$SANDBOX_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  .venv/bin/python -m target_segmetrics.sandbox.show --url "http://127.0.0.1:$PORT" >/dev/null 2>&1 && break
  sleep 0.2
done

CONFIG="$(mktemp)"
cat > "$CONFIG" <<JSON
{
  "api_key": "demo-key",
  "account_id": "demo",
  "integration_id": "demo-int",
  "api_url": "http://127.0.0.1:$PORT/api/v1",
  "mappings": {"contacts": {"preset": "hubspot"}}
}
JSON

echo "== tap-hubspot (recorded run) | target-segmetrics; STATE lines printed by the target:"
.venv/bin/target-segmetrics --config "$CONFIG" < tests/fixtures/hubspot/meltanolabs_contacts.singer
echo
echo "== What SegMetrics (the sandbox) now holds:"
.venv/bin/python -m target_segmetrics.sandbox.show --url "http://127.0.0.1:$PORT" --only contacts
rm -f "$CONFIG"
