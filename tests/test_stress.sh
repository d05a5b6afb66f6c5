#!/bin/sh
# Runs tests/node/stress.mjs against a real hearthd serving stories260K:
# 2,000 requests from 64 clients (4 slots + a queue of 64 hold them all),
# 30% hanging up at random points. hearthd must then stop cleanly (exit 0:
# under ThreadSanitizer a report makes it exit non-zero). Exit 77 (skip)
# when the test data or node is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs
hearthd_start --model "$data/models/stories260K.gguf" --parallel 4 --max-queue 64
HEARTH_URL="http://127.0.0.1:$port" STRESS_CLIENTS=${STRESS_CLIENTS:-64} \
    node "$here/node/stress.mjs"
rc=$?
hearthd_stop
if [ $hearthd_status -ne 0 ]; then echo "hearthd exited with $hearthd_status"; rc=1; fi
if [ -n "${STRESS_SHOW_LOG:-}" ] || [ $rc -ne 0 ]; then echo "---- hearthd log (last 80 lines)"; tail -n 80 "$log"; fi
exit $rc
