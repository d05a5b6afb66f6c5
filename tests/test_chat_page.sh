#!/bin/sh
# The chat page end to end (docs/chat-page.md): tests/node/chat_page.mjs
# starts hearthds with the page off, on a non-loopback address and on with
# stories260K and an API key, checks the page's files over HTTP, then drives
# the page in headless Chromium (Debian's chromium, through playwright-core).
# The screenshots go to tests/chat_page.png and tests/chat_page_narrow.png in
# the build tree; the logs stay in a temporary directory when a check fails.
# Exit 77 (skip) when the test data, node, chromium or playwright-core is
# missing; scripts/install-deps.sh installs them.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs
if [ ! -x /usr/bin/chromium ]; then
    echo "SKIP: /usr/bin/chromium missing (apt-get install chromium)"; exit 77
fi
if [ ! -d "$here/node/node_modules/playwright-core" ]; then
    echo "SKIP: playwright-core missing (run: npm ci --prefix tests/node)"; exit 77
fi
mkdir -p tests
scratch_new chat
HEARTHD="$hearthd" HEARTH_TEST_DATA="$data" CHAT_TMP="$tmp" CHAT_SHOT="$(pwd)/tests/chat_page.png" \
    node "$here/node/chat_page.mjs"
scratch_end $?
