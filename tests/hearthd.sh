# hearthd.sh - sourced by the shell suites: what they need, and start
# hearthd on a free loopback port and stop it.
#
#   hearthd_needs_model [TOOL...]
#                           sets $data (HEARTH_TEST_DATA), $hearthd (HEARTHD)
#                           and $model (stories260K); exits 77 (skip) when
#                           the model or one of the tools is missing
#   hearthd_needs [openai]  the same with node and, with "openai", the npm
#                           package
#   hearthd_start ARGS...   sets $pid, $port and $log (exit 1 with the log
#                           when hearthd does not come up within 30 s);
#                           the daemon is killed when the script exits
#   hearthd_stop            SIGTERM, wait; sets $hearthd_status
#   scratch_new NAME        sets $tmp, a fresh scratch directory for logs
#   scratch_end STATUS      removes $tmp when STATUS is 0, else shows the
#                           end of each log in it and keeps it; exits STATUS
hearthd_needs_model() {
    data=${HEARTH_TEST_DATA:-$here/../../shared}
    hearthd=${HEARTHD:-./hearthd}
    model="$data/models/stories260K.gguf"
    if [ ! -f "$model" ]; then
        echo "SKIP: $model not found (set HEARTH_TEST_DATA)"; exit 77
    fi
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool missing"; exit 77; }
    done
}

hearthd_needs() {
    hearthd_needs_model node
    if [ "${1:-}" = openai ] && [ ! -d "$here/node/node_modules/openai" ]; then
        echo "SKIP: the openai package missing (run: npm ci --prefix tests/node)"; exit 77
    fi
}

hearthd_start() {
    log=$(mktemp)
    "$hearthd" "$@" --host 127.0.0.1 --port 0 >"$log" 2>&1 &
    pid=$!
    trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
    trap 'exit 1' INT TERM
    port=""
    for _ in $(seq 1 300); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
        [ -n "$port" ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "hearthd did not start:"; cat "$log"; exit 1
    fi
}

hearthd_stop() {
    kill -TERM $pid
    wait $pid
    hearthd_status=$?
}

scratch_new() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/hearth-$1.XXXXXX")
}

scratch_end() {
    if [ "$1" -eq 0 ]; then
        rm -rf "$tmp"
    else
        for f in "$tmp"/*.log; do echo "---- $f (last 40 lines)"; tail -n 40 "$f"; done
        echo "(logs kept in $tmp)"
    fi
    exit "$1"
}
