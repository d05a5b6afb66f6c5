#!/bin/sh
# run.sh - generate the benchmark models (random weights, real shapes) into
# a directory if they are not there yet, measure memory bandwidth, and run
# `hearth bench` on each model at 1 and 2 threads.
#
#   tests/bench/run.sh [BUILD_DIR]     (default: the current directory)
#
# Environment: MODELS (default /tmp), VOCAB_DIR (default
# <srcdir>/../shared/models/vocab), REPS (default 3), PP (512), TG (128),
# THREADS ("1 2"), SHAPES (the list below, "shape:type" words), JSON=1 for
# one JSON object per run instead of the tables.
# Results depend on the machine and on what else runs on it: compare runs
# made back to back, as ratios.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${1:-.}
hearth=$build/hearth
gen=$build/tests/gen_model
membw=$build/tests/bench/membw
models=${MODELS:-/tmp}
vocab_dir=${VOCAB_DIR:-$src/../shared/models/vocab}
reps=${REPS:-3}
pp=${PP:-512}
tg=${TG:-128}
threads=${THREADS:-"1 2"}
shapes=${SHAPES:-"qwen2.5-0.5b:q4_0 qwen2.5-0.5b:q4_k_m llama-3.2-1b:q4_0 llama-3.2-1b:q4_k_m smollm2-135m:q4_0"}

for f in "$hearth" "$gen"; do
    if [ ! -x "$f" ]; then
        echo "run.sh: $f not built (make hearth tests/gen_model)" >&2
        exit 1
    fi
done

vocab_for() {
    case $1 in
    qwen*) echo "$vocab_dir/ggml-vocab-qwen2.gguf" ;;
    llama*) echo "$vocab_dir/ggml-vocab-llama-bpe.gguf" ;;
    *) echo "" ;;
    esac
}

echo "== machine"
lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)|Thread|L2|L3|Flags)' |
    sed 's/^Flags:.*/Flags: (see lscpu)/' || true
if [ -x "$membw" ]; then
    echo "== memory bandwidth"
    "$membw" 1024 2 2>/dev/null
fi

for st in $shapes; do
    shape=${st%%:*}
    type=${st#*:}
    out=$models/hearth-bench-$shape-$type.gguf
    if [ ! -f "$out" ]; then
        v=$(vocab_for "$shape")
        if [ -n "$v" ] && [ -f "$v" ]; then
            "$gen" --shape "$shape" --type "$type" --vocab "$v" -o "$out" ||
                { echo "run.sh: cannot generate $shape $type, skipped" >&2; continue; }
        else
            "$gen" --shape "$shape" --type "$type" -o "$out" ||
                { echo "run.sh: cannot generate $shape $type, skipped" >&2; continue; }
        fi
    fi
    for t in $threads; do
        echo "== $shape $type, $t thread(s)"
        if [ "${JSON:-0}" = 1 ]; then
            "$hearth" bench -m "$out" -p "$pp" -n "$tg" -t "$t" -r "$reps" --json
        else
            "$hearth" bench -m "$out" -p "$pp" -n "$tg" -t "$t" -r "$reps"
        fi
    done
done
