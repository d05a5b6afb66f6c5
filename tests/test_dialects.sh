#!/bin/sh
# Runs tests/node/dialects.mjs - the official Anthropic and OpenAI Node
# clients on /v1/messages, /v1/messages/count_tokens and /v1/responses -
# against a real hearthd serving stories260K with an API key (Anthropic's
# client sends it as x-api-key). Exit 77 (skip) when the test data, node or
# the npm packages are missing; scripts/install-deps.sh installs them.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs openai
if [ ! -d "$here/node/node_modules/@anthropic-ai/sdk" ]; then
    echo "SKIP: the @anthropic-ai/sdk package missing (run: npm ci --prefix tests/node)"; exit 77
fi
hearthd_start --model "$data/models/stories260K.gguf" --api-key test-key-123
HEARTH_URL="http://127.0.0.1:$port" HEARTH_KEY=test-key-123 HEARTH_TEST_DATA="$data" \
    node "$here/node/dialects.mjs"
rc=$?
hearthd_stop
if [ $hearthd_status -ne 0 ]; then echo "hearthd exited with $hearthd_status"; cat "$log"; rc=1; fi
exit $rc
