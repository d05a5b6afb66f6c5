#!/bin/sh
# The router's cloud client over HTTPS: tests/node/router_tls.mjs serves the
# fault upstream (tests/node/fault_upstream.mjs --tls) with certificates made
# here for this run, and checks that hearthd verifies the peer: a
# certificate it does not trust, or one for another name, falls back to the
# local model; [upstream.NAME] ca_file makes the same server trusted
# (docs/router.md, "How it is tested").
# Exit 77 (skip) when the test data, node or openssl is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs
command -v openssl >/dev/null 2>&1 || { echo "SKIP: openssl missing"; exit 77; }
scratch_new router-tls
# NAME SUBJECT_ALT_NAMES: $tmp/NAME.crt and $tmp/NAME.key, self-signed, one day
make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -keyout "$tmp/$1.key" -out "$tmp/$1.crt" -subj "/CN=$2" \
        -addext "subjectAltName=$3" >"$tmp/openssl.log" 2>&1 ||
        { cat "$tmp/openssl.log"; scratch_end 1; }
}
make_cert localhost localhost IP:127.0.0.1,DNS:localhost
make_cert other example.org DNS:example.org
HEARTHD="$hearthd" HEARTH_TEST_DATA="$data" ROUTER_TMP="$tmp" node "$here/node/router_tls.mjs"
scratch_end $?
