# hearthd.sh - sourced by the shell suites: start hearthd on a free
# loopback port and stop it. Needs $hearthd (the binary).
#
#   hearthd_start ARGS...   sets $pid, $port and $log (exit 1 with the log
#                           when hearthd does not come up within 30 s);
#                           the daemon is killed when the script exits
#   hearthd_stop            SIGTERM, wait; sets $hearthd_status
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
