#!/bin/sh
# Install what is missing of the dependencies, build hearth in this checkout
# (in the tree, so ./hearthd and `make check` work from here), get a model,
# and start hearthd in the foreground on 127.0.0.1:8080 with
# conf/hearth.conf.
#
# The model: unless --model is given, the default model is pulled into the
# model store (`hearth pull`, docs/hearth.md) when the network allows:
#   Qwen2.5-0.5B-Instruct, Q4_K_M (about 490 MB), by the Qwen team,
#   Apache License 2.0 - hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M
# HEARTH_DEFAULT_MODEL=REF picks another reference; --no-pull skips it.
# Without a network the daemon starts without a model and this says how to
# give one.
#
# Extra arguments go to hearthd, e.g.:
#   scripts/setup.sh --model ../shared/models/stories260K.gguf
# --no-start (first) installs and builds only (no pull).
#
# scripts/install-deps.sh installs only the packages that are missing, with
# --no-install-recommends and --no-upgrade: nothing already installed is
# upgraded, and no apt-get upgrade is run.
set -eu
start=yes
pull=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --no-start) start=no; pull=no; shift ;;
        --no-pull) pull=no; shift ;;
        *) break ;;
    esac
done
for arg in "$@"; do
    case "$arg" in
        --model|--model=*|-m) pull=no ;;
    esac
done
cd "$(dirname "$0")/.."
sh scripts/install-deps.sh
[ -x configure ] || autoreconf -fi
[ -f Makefile ] || ./configure
make -j"$(nproc)"
if [ "$start" = no ]; then
    echo "setup: built; start the daemon with: ./hearthd --config conf/hearth.conf"
    exit 0
fi

ref=${HEARTH_DEFAULT_MODEL:-hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M}
if [ "$pull" = yes ]; then
    echo "setup: pulling the default model $ref (Qwen2.5-0.5B-Instruct, Apache-2.0)"
    if ./hearth pull --config conf/hearth.conf "$ref"; then
        echo "setup: the model is in the store: ./hearth list shows it"
    else
        cat <<EOF
setup: the default model could not be downloaded (no network, or the hub
       is unreachable). hearthd starts without a model; give it one with
         scripts/setup.sh --model /path/to/model.gguf
       or put a GGUF file in the store and name it in requests:
         ./hearth pull https://host/path/model.gguf   (or hf:OWNER/REPO:QUANT)
EOF
    fi
fi
echo "setup: starting hearthd (Ctrl-C stops it)"
exec ./hearthd --config conf/hearth.conf "$@"
