#!/bin/sh
# Runs tests/node/openai_client.mjs (the official OpenAI Node client)
# against a real hearthd serving stories260K. Exit 77 (skip) when the test
# data or the npm packages are missing; scripts/install-deps.sh installs them.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs openai
hearthd_start --model "$data/models/stories260K.gguf"
HEARTH_URL="http://127.0.0.1:$port" HEARTH_TEST_DATA="$data" node "$here/node/openai_client.mjs"
rc=$?
hearthd_stop
if [ $hearthd_status -ne 0 ]; then echo "hearthd exited with $hearthd_status"; cat "$log"; rc=1; fi
exit $rc
