#!/bin/sh
# Install what is missing of the dependencies, build hearth in this checkout
# (in the tree, so ./hearthd and `make check` work from here), and start
# hearthd in the foreground on 127.0.0.1:8080 with conf/hearth.conf.
# Extra arguments go to hearthd, e.g.:
#   scripts/setup.sh --model ../shared/models/stories260K.gguf
# --no-start (first) installs and builds only.
#
# scripts/install-deps.sh installs only the packages that are missing, with
# --no-install-recommends and --no-upgrade: nothing already installed is
# upgraded, and no apt-get upgrade is run.
set -eu
start=yes
if [ "${1:-}" = --no-start ]; then
    start=no
    shift
fi
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(nproc)"
if [ "$start" = no ]; then
    echo "setup: built; start the daemon with: ./hearthd --config conf/hearth.conf"
    exit 0
fi
echo "setup: starting hearthd (Ctrl-C stops it)"
exec ./hearthd --config conf/hearth.conf "$@"
