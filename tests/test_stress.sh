#!/bin/sh
# Runs tests/node/stress.mjs against a real hearthd serving stories260K:
# 2,000 requests from 64 clients (4 slots + a queue of 64 hold them all),
# 30% hanging up at random points. hearthd must then stop cleanly (exit 0:
# under ThreadSanitizer a report makes it exit non-zero). Exit 77 (skip)
# when the test data or node is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
data=${HEARTH_TEST_DATA:-$here/../../shared}
hearthd=${HEARTHD:-./hearthd}
if [ ! -f "$data/models/stories260K.gguf" ]; then
    echo "SKIP: $data/models/stories260K.gguf not found (set HEARTH_TEST_DATA)"; exit 77
fi
if ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node missing"; exit 77
fi
log=$(mktemp)
"$hearthd" --model "$data/models/stories260K.gguf" --host 127.0.0.1 --port 0 \
    --parallel 4 --max-queue 64 >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 300); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "hearthd did not start:"; cat "$log"; exit 1
fi
HEARTH_URL="http://127.0.0.1:$port" STRESS_CLIENTS=${STRESS_CLIENTS:-64} \
    node "$here/node/stress.mjs"
rc=$?
kill -TERM $pid
wait $pid
st=$?
if [ $st -ne 0 ]; then echo "hearthd exited with $st"; rc=1; fi
if [ -n "${STRESS_SHOW_LOG:-}" ] || [ $rc -ne 0 ]; then echo "---- hearthd log (last 80 lines)"; tail -n 80 "$log"; fi
exit $rc
