#!/bin/sh
# test_new_user.sh - the small things a new user tripped on (issue 13),
# through the real binaries: completion ids of two hearthd runs differ
# throughout (not in 4 of 16 digits), system_fingerprint names the build
# and the model (the same for the same file, another for another file), a
# model that cannot be loaded is named once in the error, an unknown
# --chat-template is a usage error (exit 2) listing the built-in names, and
# hearth info names general.file_type. Exit 77 (skip) without stories260K,
# curl or python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs_model curl python3
hearth=${HEARTH:-./hearth}

scratch_new new-user
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if [ "$2" = "$3" ]; then echo "ok: $1"; else fail "$1: want '$2', got '$3'"; fi; }

# ask: one chat completion from the running hearthd; prints "ID FINGERPRINT"
ask() {
    curl -s -H 'Content-Type: application/json' \
        -d '{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":2}' \
        "http://127.0.0.1:$port/v1/chat/completions" |
        python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["id"], j["system_fingerprint"])'
}
# digits_same A B: how many of the 16 hex digits after the prefix are equal
digits_same() {
    python3 -c 'import sys; a,b=(s.split("-")[-1] for s in sys.argv[1:3]); print(sum(x==y for x,y in zip(a,b)))' "$1" "$2"
}

# ---- ids and fingerprints: two runs on the same file, one on a copy
hearthd_start --model "$model"
set -- $(ask); id1=$1 fp1=$2
set -- $(ask); id1b=$1
hearthd_stop
hearthd_start --model "$model"
set -- $(ask); id2=$1 fp2=$2
hearthd_stop
cp "$model" "$tmp/other.gguf"
hearthd_start --model "$tmp/other.gguf"
set -- $(ask); fp3=$2
hearthd_stop

echo "ids: $id1 $id1b | $id2"
case $id1 in chatcmpl-[0-9a-f]*) [ ${#id1} -eq 25 ] || fail "id $id1" ;; *) fail "id $id1" ;; esac
[ "$id1" != "$id1b" ] || fail "two requests of one run got the same id $id1"
# random ids share a digit with probability 1/16: 7 or more of 16 by
# chance about once in 25,000 pairs (the old ids shared 12)
same=$(digits_same "$id1" "$id2")
[ "$same" -le 6 ] && echo "ok: ids of two runs share $same of 16 digits" ||
    fail "ids of two runs share $same of 16 digits: $id1 $id2"
same=$(digits_same "$id1" "$id1b")
[ "$same" -le 6 ] && echo "ok: consecutive ids share $same of 16 digits" ||
    fail "consecutive ids share $same of 16 digits: $id1 $id1b"

echo "fingerprints: $fp1 $fp2 $fp3"
case $fp1 in fp_[0-9a-f]*) [ ${#fp1} -eq 19 ] || fail "fingerprint $fp1" ;; *) fail "fingerprint $fp1" ;; esac
check "the same build and model: the same fingerprint" "$fp1" "$fp2"
[ "$fp1" != "$fp3" ] && echo "ok: another model file, another fingerprint" ||
    fail "another model file kept the fingerprint $fp1"

# ---- a model that cannot be loaded: named once, with the reason
printf 'not a model' > "$tmp/broken.gguf"
"$hearthd" --model "$tmp/broken.gguf" --port 0 > "$tmp/broken.log" 2>&1; rc=$?
check "broken model: exit status" 1 "$rc"
n=$(grep -o "$tmp/broken.gguf" "$tmp/broken.log" | wc -l)
check "broken model: the path named once" 1 "$n"
grep -q "not a GGUF file" "$tmp/broken.log" || fail "broken model said: $(cat "$tmp/broken.log")"

# ---- an unknown chat template: usage error with the names
"$hearthd" --chat-template foo --model "$model" --port 0 > "$tmp/tmpl.log" 2>&1; rc=$?
check "--chat-template foo: exit status" 2 "$rc"
check "--chat-template foo: one line" 1 "$(wc -l < "$tmp/tmpl.log")"
grep -q "'foo' is not a built-in template (chatml, llama2, llama3, mistral, phi3, gemma, zephyr, deepseek)" \
    "$tmp/tmpl.log" || fail "--chat-template foo said: $(cat "$tmp/tmpl.log")"

# ---- hearth info: general.file_type by name
"$hearth" quantize "$model" "$tmp/q8.gguf" q8_0 > "$tmp/quantize.log" 2>&1 || fail "quantize: $(cat "$tmp/quantize.log")"
line=$("$hearth" info "$tmp/q8.gguf" | grep '^file type')
check "hearth info: file type" "file type        MOSTLY_Q8_0 (7)" "$line"
"$hearth" info "$tmp/broken.gguf" > "$tmp/info.log" 2>&1
n=$(grep -o "$tmp/broken.gguf" "$tmp/info.log" | wc -l)
check "hearth info, broken file: the path named once" 1 "$n"

[ $fails -eq 0 ] && echo "all passed"
scratch_end $((fails > 0))
