#!/bin/sh
# Install everything hearth needs to build and test on Debian/Ubuntu.
# Non-interactive; safe to run again. Needs root (uses sudo when not root).
set -eu

PKGS="build-essential autoconf automake libtool pkg-config
      libmicrohttpd-dev libjansson-dev libuv1-dev libopenblas-dev
      check libcurl4-openssl-dev libssl-dev libpcre2-dev libinih-dev libsystemd-dev
      curl openssl clang libclang-rt-dev cppcheck python3
      chromium"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

export DEBIAN_FRONTEND=noninteractive
# Skip the network round trip when everything is already installed.
missing=""
for p in $PKGS; do
    # "install ok installed" only: a removed package whose config files
    # remain is missing too
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q ' installed$' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing:$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    # only what is missing: --no-upgrade leaves a listed package that is
    # somehow installed already alone, and there is no apt-get upgrade
    $SUDO apt-get install -y -qq --no-install-recommends --no-upgrade $missing
else
    echo "install-deps: all packages present"
fi

# Node.js and npm run the OpenAI-SDK client test. Machines often carry a
# NodeSource build (which bundles npm); only fall back to Debian's when absent.
if ! command -v npm >/dev/null 2>&1; then
    $SUDO apt-get install -y -qq --no-install-recommends --no-upgrade nodejs npm
fi

# The client libraries the integration tests drive hearthd with, and
# playwright-core, which drives chromium (above) for the chat page's test.
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$here/tests/node/package-lock.json" ]; then
    (cd "$here/tests/node" && npm ci --no-audit --no-fund --loglevel=error)
fi
