#!/bin/sh
# Continuous batching, measured: N clients at once against one hearthd,
# each generating the same number of tokens; prints the aggregate tokens/s
# for N = 1, 2, 4, 8 and its ratio to N = 1 (same script, same run).
#
#   tests/bench/concurrency.sh MODEL.gguf [TOKENS] [THREADS]
set -eu
model=${1:?usage: concurrency.sh MODEL.gguf [TOKENS] [THREADS]}
tokens=${2:-64}
threads=${3:-0}
hearthd=${HEARTHD:-./hearthd}
log=$(mktemp)
"$hearthd" --model "$model" --host 127.0.0.1 --port 0 --parallel 8 --context 512 \
    --threads "$threads" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 200); do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "hearthd did not start"; cat "$log"; exit 1; }
body="{\"prompt\":\"Once upon a time\",\"max_tokens\":$tokens,\"temperature\":0,\"seed\":1,\"stop\":[\"zzzz\"],\"logit_bias\":{\"2\":-100}}"
one() { curl -s -o /dev/null "http://127.0.0.1:$port/v1/completions" -d "$body"; }
one # warm up
base=""
printf '%-8s %-12s %-10s %s\n' clients seconds tok/s "vs 1 client"
for n in 1 2 4 8; do
    t0=$(date +%s.%N)
    i=0
    pids=""
    while [ $i -lt $n ]; do one & pids="$pids $!"; i=$((i + 1)); done
    # shellcheck disable=SC2086
    wait $pids
    t1=$(date +%s.%N)
    rate=$(echo "$n * $tokens / ($t1 - $t0)" | bc -l)
    [ -n "$base" ] || base=$rate
    printf '%-8s %-12.2f %-10.1f %.2fx\n' "$n" "$(echo "$t1 - $t0" | bc -l)" "$rate" \
        "$(echo "$rate / $base" | bc -l)"
done
