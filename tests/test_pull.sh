#!/bin/sh
# hearth pull / list / rm / show against tests/fake_hub.py, a local stand-in
# for the Hugging Face hub on loopback (never the real hub): the file API
# and its pages, resolve/ redirects, the token, resume after a cut, a
# wrong checksum, a wrong size, 404s, a stall, a file that is not GGUF,
# Ctrl-C; after each failure no file under the final name and no listed
# model. The model served is a tiny one tests/gen_model writes (else
# ../shared's stories260K; exit 77 when neither is there, or no python3).
set -u
here=$(cd "$(dirname "$0")" && pwd)
hearth=${HEARTH:-./hearth}
gen=${GEN_MODEL:-./tests/gen_model}
data=${HEARTH_TEST_DATA:-$here/../../shared}
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 missing"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/hearth-pull.XXXXXX")
hub_pid=""
trap '[ -n "$hub_pid" ] && kill $hub_pid 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM
fail() { echo "FAIL: $*"; for f in out err; do echo "--- $f"; cat "$tmp/$f" 2>/dev/null; done; exit 1; }

model=$tmp/model.gguf
if [ -x "$gen" ] && "$gen" --shape tiny --type q4_0 -o "$model" >/dev/null 2>&1; then
    quant=Q4_0
elif [ -f "$data/models/stories260K.gguf" ]; then
    cp "$data/models/stories260K.gguf" "$model"; quant=F32
else
    echo "SKIP: neither tests/gen_model nor $data/models/stories260K.gguf"; exit 77
fi
sha_of() { sha256sum "$1" | cut -d' ' -f1; }
model_sha=$(sha_of "$model")

# ---- the hub, on a free port it prints; waited for with a deadline
python3 "$here/fake_hub.py" "$model" > "$tmp/port" 2> "$tmp/hub.log" &
hub_pid=$!
port=""
deadline=$(( $(date +%s) + 20 ))
while [ -z "$port" ] && [ "$(date +%s)" -lt "$deadline" ]; do
    kill -0 $hub_pid 2>/dev/null || { cat "$tmp/hub.log"; fail "the fake hub died"; }
    port=$(head -n 1 "$tmp/port")
    [ -n "$port" ] || sleep 0.1
done
[ -n "$port" ] || fail "the fake hub printed no port within 20 s"
hub=http://127.0.0.1:$port
stats() { curl -s "$hub/_stats"; }

S=$tmp/store
conf=$tmp/hearth.conf
printf '[store]\nhub_url = %s\nstall_timeout = 2\n' "$hub" > "$conf"

# pull REF [ARGS]: status in $rc, stdout in out, stderr in err
pull() { "$hearth" pull "$@" --config "$conf" --store "$S" > "$tmp/out" 2> "$tmp/err"; rc=$?; }
expect() { [ "$rc" -eq "$1" ] || fail "$2: exit $rc, expected $1"; }
has() { grep -q -- "$2" "$tmp/$1" || fail "$1 lacks '$2'"; }
# one_line: usage errors are the only line on stderr; err_line: a failed
# pull's error is one line, the last, after its notes and progress lines,
# and every line is hearth's own (no curl text)
one_line() { [ "$(wc -l < "$tmp/err")" -eq 1 ] || fail "$1: not one line on stderr"; }
err_line() {
    grep -qv '^hearth pull: ' "$tmp/err" && fail "$1: a line on stderr that is not hearth's"
    tail -n 1 "$tmp/err" | grep -q -- "$2" || fail "$1: the last line is not the error '$2'"
}
# absent NAME: no file under the final name, not listed (python3 starts
# slowly on a loaded machine: grep where it will do)
absent() {
    [ ! -e "$S/$1.gguf" ] || fail "$1.gguf is in the store after a failed pull"
    "$hearth" list --store "$S" > "$tmp/list.txt" 2>&1 || fail "list"
    grep -q "^$1 " "$tmp/list.txt" && fail "$1 is listed after a failed pull"
    true
}
# a string field of a manifest (written by jansson, one key a line)
manifest() { sed -n 's/^  "'"$2"'": "\(.*\)",*$/\1/p' "$S/$1.json"; }
count_cdn() { stats | grep -o '"path": "/cdn/test/'"$1"'/' | wc -l; }

# ---- the default pick, on the third page of the file list
pull hf:test/good; expect 0 "hf:test/good"
has out "pulled good-Q4_K_M"
has err "picked good-Q4_K_M.gguf (Q4_K_M)"
has err "100%"
[ "$(sha_of "$S/good-Q4_K_M.gguf")" = "$model_sha" ] || fail "good-Q4_K_M: wrong bytes"
[ "$(manifest good-Q4_K_M source)" = "hf:test/good:good-Q4_K_M.gguf" ] || fail "manifest source"
[ "$(manifest good-Q4_K_M sha256)" = "$model_sha" ] || fail "manifest sha256"
stats | python3 -c '
import json, sys
q = [e["query"] for e in json.load(sys.stdin) if e["path"] == "/api/models/test/good/tree/main"]
assert q == ["recursive=true", "recursive=true&cursor=3", "recursive=true&cursor=6"], q' ||
    fail "the file list's pages were not followed"
[ -z "$(ls -A "$S/.partial")" ] || fail ".partial not empty after a good pull: $(ls -A "$S/.partial")"

# the same again: the published hash matches, nothing is downloaded
n=$(count_cdn good)
pull hf:test/good; expect 0 "second pull"
has err "up to date"
[ "$(count_cdn good)" -eq "$n" ] || fail "an up-to-date model was downloaded again"

# ---- choosing a file
pull hf:test/good:q8_0; expect 0 ":q8_0"; has out "pulled good-Q8_0"; has err "picked good-Q8_0.gguf"
pull hf:test/good:good-Q4_K_S.gguf; expect 0 ":FILE.gguf"; has out "pulled good-Q4_K_S"
pull hf:test/good:q6_k; expect 0 ":QUANT of a file in a folder"; has out "pulled deep-Q6_K"
[ "$(manifest deep-Q6_K source)" = "hf:test/good:sub/deep-Q6_K.gguf" ] || fail "folder source"
pull hf:test/single --name mine; expect 0 "--name"; has out "pulled mine"
has err "the only .gguf"
pull hf:test/good:Q4_K; expect 1 ":Q4_K (no such tag)"; err_line ":Q4_K" "no file matches Q4_K"
has err "no file matches Q4_K"; has err "good-Q4_K_M.gguf"
pull hf:test/good:Q5_K_M; expect 1 "multi-part"; err_line multi-part "multi-part GGUF"
absent good-Q5_K_M-00001-of-00002
pull hf:test/good:mmproj-good-f16.gguf; expect 0 "an mmproj file named explicitly"
pull hf:test/noquant; expect 1 "no default quant"; has err "a-F16.gguf, b-F32.gguf"

# ---- checks that fail: nothing under the final name, the partial file deleted
pull hf:test/badsum; expect 1 badsum; err_line badsum "checksum mismatch.*$model_sha"
has err "$(printf 'something else' | sha256sum | cut -d' ' -f1)"
absent badsum-Q4_K_M
[ ! -e "$S/.partial/badsum-Q4_K_M.gguf" ] || fail "the partial file of a bad checksum was kept"
pull hf:test/linked; expect 0 "X-Linked-ETag"
[ "$(manifest linked sha256)" = "$model_sha" ] || fail "linked: sha256 from X-Linked-ETag"
pull hf:test/linkedbad; expect 1 "a wrong X-Linked-ETag"; has err "checksum mismatch"
absent linkedbad
pull hf:test/sizeoff; expect 1 "a wrong size"; has err "expected"; absent sizeoff
pull hf:test/badmagic; expect 1 "not GGUF"; err_line badmagic "not a GGUF file"
absent badmagic
[ ! -e "$S/.partial/badmagic.gguf" ] || fail "the partial file of a non-GGUF was kept"

# ---- a cut, then the same pull resumes with a Range request
pull hf:test/cut; expect 1 "cut midway"; err_line cut "was cut.*the same pull resumes"
 absent cut-Q4_K_M
[ -s "$S/.partial/cut-Q4_K_M.gguf" ] || fail "the cut download's partial file is gone"
kept=$(wc -c < "$S/.partial/cut-Q4_K_M.gguf")
pull hf:test/cut; expect 0 "resume"; has err "resuming cut-Q4_K_M.gguf at $kept"
[ "$(sha_of "$S/cut-Q4_K_M.gguf")" = "$model_sha" ] || fail "resumed file: wrong sha256"
stats | python3 -c '
import json, sys
r = [e for e in json.load(sys.stdin) if e["path"] == "/cdn/test/cut/cut-Q4_K_M.gguf"]
assert len(r) == 2 and r[0]["range"] is None and r[1]["range"] == "bytes=%s-" % sys.argv[1], r
assert r[1]["if_range"], r' "$kept" || fail "the second pull sent no Range (If-Range) request"
# a server that ignores Range: the whole file again, from zero
pull hf:test/cutnorange; expect 1 "cut (no range)"
pull hf:test/cutnorange; expect 0 "restart"; has err "started over"
[ "$(sha_of "$S/cutnorange.gguf")" = "$model_sha" ] || fail "restarted file: wrong sha256"

# ---- a stall (stall_timeout 2), 404s, an unreachable host
start=$(date +%s)
pull hf:test/stall; expect 1 "stall"; err_line stall "stalled"; absent stall
[ $(( $(date +%s) - start )) -lt 15 ] || fail "the stall was not detected within 15 s"
pull hf:test/gone; expect 1 "404 (file)"; err_line gone "404"; absent gone
[ ! -e "$S/.partial/gone.gguf" ] || fail "an empty partial file was left by a 404"
pull hf:test/nothere; expect 1 "404 (repo)"; err_line repo "no repo test/nothere"
pull "$hub/plain/missing.gguf"; expect 1 "404 (URL)"; has err "404"; absent missing

# ---- a URL; the token only for the hub's host
pull "$hub/plain/byurl.gguf"; expect 0 "a URL"; has out "pulled byurl"
has err "no published SHA-256"
[ "$(manifest byurl sha256)" = "$model_sha" ] || fail "byurl: recorded sha256"
pull hf:test/private; expect 1 "no token"; has err "HF_TOKEN"; absent private
HF_TOKEN=sekrit-token-123 "$hearth" pull hf:test/private --config "$conf" --store "$S" \
    > "$tmp/out" 2> "$tmp/err"; rc=$?; expect 0 "with the token"
grep -q sekrit "$tmp/out" "$tmp/err" && fail "the token was printed"
stats | python3 -c '
import json, sys
log = [e for e in json.load(sys.stdin) if "private" in e["path"] and e["auth"]]
assert log and all(not e["path"].startswith("/cdn/") for e in log), log
assert any(e["path"].startswith("/api/") for e in log), log' ||
    fail "the token must go to the hub's host and only there"

# ---- usage errors: exit 2, one line
for ref in foo hf:a hf:a/b: hf:/b "ftp://x/y.gguf" "hf:a b/c"; do
    pull "$ref"; expect 2 "bad ref '$ref'"; one_line "bad ref '$ref'"
done
pull hf:test/single --name ../evil; expect 2 "bad --name"; one_line "bad --name"
pull; expect 2 "no ref"
pull hf:test/single --bogus; expect 2 "unknown flag"; one_line "unknown flag"

# ---- Ctrl-C: exit 130, one line, the partial file kept
printf '[store]\nhub_url = %s\nstall_timeout = 60\n' "$hub" > "$tmp/slow.conf"
rm -f "$S/.partial/stall.gguf"
"$hearth" pull hf:test/stall --config "$tmp/slow.conf" --store "$S" > "$tmp/bg.out" 2> "$tmp/bg.err" &
ppid_=$!
deadline=$(( $(date +%s) + 20 ))
until [ -s "$S/.partial/stall.gguf" ] || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.1; done
[ -s "$S/.partial/stall.gguf" ] || fail "the slow pull wrote nothing within 20 s"
# meanwhile a second pull of the same model is refused, and leaves it alone
pull hf:test/stall; expect 1 "a concurrent pull"; err_line concurrent "another pull of stall"
[ -s "$S/.partial/stall.gguf" ] || fail "a refused concurrent pull touched the partial file"
kill -INT $ppid_
wait $ppid_; rc=$?; cp "$tmp/bg.err" "$tmp/err"; expect 130 "SIGINT"
err_line SIGINT "interrupted"
[ -s "$S/.partial/stall.gguf" ] || fail "SIGINT deleted the partial file"
absent stall

# ---- list, show, rm
cp "$model" "$S/bare.gguf"
head -c 1000 "$model" > "$tmp/short" && cp "$tmp/short" "$S/mine.gguf"   # replaced by hand
"$hearth" list --store "$S" > "$tmp/out" 2> "$tmp/err" || fail "list"
has out "^NAME *SIZE *QUANT *SOURCE"
grep -q "^good-Q4_K_M .*$quant *hf:test/good:good-Q4_K_M.gguf" "$tmp/out" || fail "list row"
grep -q "^bare .* -$" "$tmp/out" || fail "a bare file is listed with source -"
"$hearth" list --json --store "$S" > "$tmp/list.json" || fail "list --json"
python3 - "$tmp/list.json" "$S" "$quant" "$model_sha" <<'PY' || fail "list --json shape"
import json, sys
o = json.load(open(sys.argv[1]))
assert o["store"] == sys.argv[2], o["store"]
names = [m["name"] for m in o["models"]]
assert names == sorted(names), names
assert set(names) == {"bare", "byurl", "cut-Q4_K_M", "cutnorange", "deep-Q6_K", "good-Q4_K_M",
                      "good-Q4_K_S",
                      "good-Q8_0", "linked", "mine", "mmproj-good-f16", "private"}, names
for m in o["models"]:
    assert set(m) == {"name", "path", "size", "quant", "source", "sha256", "modified"}, m
    assert m["path"] == "%s/%s.gguf" % (sys.argv[2], m["name"])
    assert isinstance(m["size"], int) and isinstance(m["modified"], int)
by = {m["name"]: m for m in o["models"]}
assert by["good-Q4_K_M"]["quant"] == sys.argv[3] and by["good-Q4_K_M"]["sha256"] == sys.argv[4]
assert by["bare"]["source"] is None and by["bare"]["sha256"] is None
# a file replaced by hand: its manifest's size disagrees, so it is not used
assert by["mine"]["source"] is None and by["mine"]["size"] == 1000, by["mine"]
assert by["mine"]["quant"] == "?", by["mine"]
PY

"$hearth" show good-Q4_K_M --store "$S" > "$tmp/out" 2> "$tmp/err" || fail "show"
has out "^source *hf:test/good:good-Q4_K_M.gguf"; has out "^sha256 *$model_sha"
has out "^architecture *llama"; has out "^parameters"; has out "^context length"
"$hearth" show good-Q4_K_M --json --store "$S" > "$tmp/show.json" || fail "show --json"
python3 - "$tmp/show.json" "$model_sha" "$quant" <<'PY' || fail "show --json shape"
import json, sys
o = json.load(open(sys.argv[1]))
want = {"name", "path", "size", "sha256", "source", "modified", "architecture", "parameters",
        "quant", "file_type", "context_length", "chat_template", "runnable"}
assert set(o) == want, set(o) ^ want
assert o["sha256"] == sys.argv[2] and o["quant"] == sys.argv[3] and o["architecture"] == "llama"
assert o["parameters"] > 0 and o["context_length"] > 0 and o["runnable"] is True
assert isinstance(o["chat_template"], bool)
PY
"$hearth" show nope --store "$S" > "$tmp/out" 2> "$tmp/err"; rc=$?; expect 1 "show a missing model"
one_line "show nope"; has err "no model named 'nope'"
"$hearth" show mine --store "$S" > "$tmp/out" 2> "$tmp/err"; rc=$?; expect 1 "show a broken file"
"$hearth" show > "$tmp/out" 2> "$tmp/err"; rc=$?; expect 2 "show without a name"

"$hearth" rm good-Q8_0 nope --store "$S" > "$tmp/out" 2> "$tmp/err"; rc=$?; expect 1 "rm (one absent)"
has out "removed good-Q8_0"; has err "no model named 'nope'"; one_line "rm nope"
[ ! -e "$S/good-Q8_0.gguf" ] && [ ! -e "$S/good-Q8_0.json" ] || fail "rm left files behind"
"$hearth" rm --store "$S" > "$tmp/out" 2> "$tmp/err"; rc=$?; expect 2 "rm without names"
"$hearth" list --store "$S" > "$tmp/out" 2>&1
grep -q "^good-Q8_0 " "$tmp/out" && fail "a removed model is listed"

# [store] dir from the configuration file
printf '[store]\ndir = %s\n' "$S" > "$tmp/dir.conf"
"$hearth" list --config "$tmp/dir.conf" > "$tmp/out" 2>&1 || fail "list with [store] dir"
has out "^good-Q4_K_M "
echo "PASS"
