#!/usr/bin/env bash
# vs_llama.sh - hearth against llama.cpp on the same machine, the same GGUF
# files and the same thread count, runs alternated, medians of ratios.
#
#   tests/bench/vs_llama.sh [BUILD_DIR] MODEL.gguf...
#
# BUILD_DIR (default .) holds the `hearth` binary. llama-bench is
# $LLAMA_BENCH, or llama-bench in $HEARTH_REF_BIN (../shared/bench/
# reference.sh builds it and prints that value); without either only
# hearth is measured. Each round runs pp and tg once
# with each program, in alternating order (hearth first on odd rounds), and
# the ratio hearth/llama.cpp of that round is kept; the table shows the
# medians over the rounds. These machines are shared: only ratios taken in
# one run mean anything.
#
# Environment:
#   ROUNDS   rounds per model (default 5)
#   PP, TG   prompt / generated tokens (default 512, 128; 0 skips one)
#   THREADS  thread counts to measure (default "2"; 0 = each program's
#            default: hearth adapts its count to the machine's load)
#   LOAD=1   keep one core busy with a shell loop meanwhile (a desktop
#            where another program wants a core)
#   HEARTH_ARGS  extra flags for `hearth bench` (e.g. --kernel avx2)
#   MEMBW=1  also print the read bandwidth (tests/bench/membw) and the
#            decode roof: file bytes per token / bandwidth
set -euo pipefail

build=.
if [[ $# -gt 0 && -d $1 ]]; then build=$1; shift; fi
if [[ $# -eq 0 ]]; then
    sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
hearth=$build/hearth
[[ -x $hearth ]] || { echo "vs_llama.sh: $hearth not built" >&2; exit 1; }
lb=${LLAMA_BENCH:-${HEARTH_REF_BIN:+$HEARTH_REF_BIN/llama-bench}}
if [[ -n $lb && ! -x $lb ]]; then
    echo "vs_llama.sh: $lb missing (run ../shared/bench/reference.sh)" >&2
    exit 1
fi
rounds=${ROUNDS:-5}
pp=${PP:-512}
tg=${TG:-128}
threads=${THREADS:-2}

busy_pid=
cleanup() { [[ -n $busy_pid ]] && kill "$busy_pid" 2>/dev/null || true; }
trap cleanup EXIT
if [[ ${LOAD:-0} == 1 ]]; then
    ( while :; do :; done ) &
    busy_pid=$!
    echo "load: one busy shell loop (pid $busy_pid)"
fi

# one figure in tokens/s from each program
run_hearth() { # model test n threads
    local a=(-p 0 -n 0)
    [[ $2 == pp ]] && a=(-p "$3" -n 0) || a=(-p 0 -n "$3")
    [[ $4 != 0 ]] && a+=(-t "$4")
    # shellcheck disable=SC2086
    "$hearth" bench -m "$1" "${a[@]}" -r 1 --json ${HEARTH_ARGS:-} \
        2>/dev/null | sed -n 's/.*"tps_mean": \([0-9.]*\).*/\1/p'
}
run_llama() {
    local a
    [[ $2 == pp ]] && a=(-p "$3" -n 0) || a=(-p 0 -n "$3")
    [[ $4 != 0 ]] && a+=(-t "$4")
    "$lb" -m "$1" "${a[@]}" -r 1 -o jsonl 2>/dev/null |
        sed -n 's/.*"avg_ts": *\([0-9.e+]*\).*/\1/p' | head -n1
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan";
    else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) CPUs)"
echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)   rounds: $rounds"
if [[ ${MEMBW:-0} == 1 && -x $build/tests/bench/membw ]]; then
    "$build/tests/bench/membw" 1024 2 2>/dev/null | sed 's/^/membw:   /'
fi
printf '%-34s %-6s %2s %10s %10s %7s %s\n' model test t hearth llama.cpp ratio \
    "ratios by round"
for m in "$@"; do
    for t in $threads; do
        for test in pp tg; do
            n=$pp
            [[ $test == tg ]] && n=$tg
            [[ $n == 0 ]] && continue
            hs=() ls=() rs=()
            for ((r = 1; r <= rounds; r++)); do
                if ((r % 2)); then
                    h=$(run_hearth "$m" $test "$n" "$t")
                    l=$([[ -n $lb ]] && run_llama "$m" $test "$n" "$t" || true)
                else
                    l=$([[ -n $lb ]] && run_llama "$m" $test "$n" "$t" || true)
                    h=$(run_hearth "$m" $test "$n" "$t")
                fi
                hs+=("${h:-nan}")
                ls+=("${l:-nan}")
                if [[ -n $h && -n $l ]]; then
                    rs+=("$(awk -v a="$h" -v b="$l" 'BEGIN{printf "%.3f", a/b}')")
                fi
            done
            hm=$(printf '%s\n' "${hs[@]}" | median)
            lm=$(printf '%s\n' "${ls[@]}" | median)
            rm=$( ((${#rs[@]})) && printf '%s\n' "${rs[@]}" | median || echo -)
            printf '%-34s %-6s %2s %10.2f %10s %7s %s\n' "$(basename "$m")" \
                "$test$n" "$t" "$hm" "$lm" "$rm" "${rs[*]:-}"
        done
    done
done
