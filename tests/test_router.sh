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
scratch_new router
HEARTHD="$hearthd" HEARTH_TEST_DATA="$data" ROUTER_TMP="$tmp" node "$here/node/router.mjs"
scratch_end $?
