#!/bin/sh
# Install the dependencies, build hearth in this checkout, and start hearthd
# in the foreground on 127.0.0.1:8080 with conf/hearth.conf.
# Extra arguments go to hearthd, e.g.:
#   scripts/setup.sh --model ../shared/models/stories260K.gguf
set -eu
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(nproc)"
echo "setup: starting hearthd (Ctrl-C stops it)"
exec ./hearthd --config conf/hearth.conf "$@"
