#!/bin/sh
# The router end to end: tests/node/router.mjs starts a fault-injecting
# upstream (tests/node/fault_upstream.mjs), a "cloud" hearthd serving
# stories260K and the hearthds under test, and checks routes, fallbacks,
# relayed bytes, cool-down, privacy, keys, budgets (docs/router.md, "How it
# is tested"). The logs stay in a temporary directory when a check fails.
# Exit 77 (skip) when the test data, node or the openai package is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs openai
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hearth-router.XXXXXX")
HEARTHD="$hearthd" HEARTH_TEST_DATA="$data" ROUTER_TMP="$tmp" node "$here/node/router.mjs"
rc=$?
if [ $rc -eq 0 ]; then
    rm -rf "$tmp"
else
    for f in "$tmp"/*.log; do echo "---- $f (last 40 lines)"; tail -n 40 "$f"; done
    echo "(logs kept in $tmp)"
fi
exit $rc
