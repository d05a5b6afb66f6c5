#!/bin/sh
# test_models.sh - hearthd serving models by name from the store
# (docs/hearthd.md, "Models by name"): /v1/models lists the store; a request
# naming a model loads it; concurrent requests during a load wait for that
# one load; under a small [model] memory_budget the least recently used idle
# model is unloaded; keep_alive (0 and a duration, per request) unloads; a
# broken file is a clear error that leaves the others serving; an unknown
# name is a 404; a budget too small for a model is a clear error; --model
# still works next to the store and stays loaded; bad values of the new
# keys stop start-up with exit 2. Exit 77 (skip) without the model or
# python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs_model python3
scratch_new models

python3 - "$hearthd" "$model" "$tmp" <<'EOF'
import json, os, re, shutil, subprocess, sys, threading, time, urllib.error, urllib.request

hearthd, model, tmp = sys.argv[1:4]
failed = []

def ok(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failed.append(what)

store = os.path.join(tmp, "store")
os.makedirs(store)
for name in ("a", "b", "c"):
    shutil.copy(model, os.path.join(store, name + ".gguf"))
with open(os.path.join(store, "broken.gguf"), "wb") as f:
    f.write(b"GGUF" + b"\x03\x00\x00\x00" + os.urandom(4000))
with open(os.path.join(store, "notes.txt"), "w") as f:
    f.write("not a model\n")

class Daemon:
    def __init__(self, name, *args):
        self.log = os.path.join(tmp, name + ".log")
        self.out = open(self.log, "w")
        self.p = subprocess.Popen([hearthd, "--host", "127.0.0.1", "--port", "0",
                                   "--store", store, "--parallel", "2", "--context", "256",
                                   *args], stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        self.port = None
        while time.time() < deadline and self.p.poll() is None:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(self.log).read())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.05)
        if not self.port:
            print(open(self.log).read())
            sys.exit(1)
        self.base = "http://127.0.0.1:%d" % self.port

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def chat(self, model=None, **extra):
        body = {"messages": [{"role": "user", "content": "Once upon a time"}],
                "max_tokens": 4, **extra}
        if model is not None:
            body["model"] = model
        return self.request("POST", "/v1/chat/completions", body)

    def resident(self):
        s, h = self.request("GET", "/health")
        return {m["id"]: m for m in h["models"]}

    def wait_for(self, cond, secs=20):
        deadline = time.time() + secs
        while time.time() < deadline:
            if cond():
                return True
            time.sleep(0.05)
        return cond()

    def log_count(self, pattern):
        return len(re.findall(pattern, open(self.log).read()))

    def stop(self):
        self.p.terminate()
        rc = self.p.wait(30)
        self.out.close()
        return rc

# ---- one daemon without a budget: listing, loading, the broken file
d = Daemon("first", "--memory-budget", "0")
s, lst = d.request("GET", "/v1/models")
ids = [m["id"] for m in lst["data"]]
ok(s == 200 and ids == ["a", "b", "broken", "c"], "/v1/models lists the store: %s" % ids)
ok(all(m["loaded"] is False for m in lst["data"]), "nothing loaded yet")
ok(d.resident() == {}, "/health: no resident model")
s, r = d.chat("a")
ok(s == 200 and r["model"] == "a", "a request naming a loads it: %d %s" % (s, r.get("model")))
res = d.resident()
ok(list(res) == ["a"] and res["a"]["state"] == "ready", "/health: a is resident")
bytes_a = res["a"]["memory_bytes"]
ok(bytes_a > os.path.getsize(model), "memory estimate above the file's size: %d" % bytes_a)
s, one = d.request("GET", "/v1/models/a")
ok(s == 200 and one["loaded"] is True and one["context_length"] == 256, "/v1/models/a: loaded")
s, r = d.chat("broken")
ok(s == 503 and r["error"]["code"] == "model_load_failed" and "broken" in r["error"]["message"],
   "a broken file: 503 model_load_failed naming it: %s" % r.get("error"))
ok("broken" not in d.resident(), "the broken model is not resident")
s, r = d.chat("a")
ok(s == 200, "a still serves after the broken load")
s, r = d.chat("nope")
ok(s == 404 and r["error"]["code"] == "model_not_found", "an unknown name: 404")
s, r = d.chat("../a")
ok(s == 404, "a path is not a name: 404")
s, r = d.chat(None)
ok(s == 200 and r["model"] == "a", "no model named: the most recently used (a)")
ok(d.stop() == 0, "clean stop")

# ---- a budget for two models: concurrent waiters, LRU unloading, keep_alive
budget = int(bytes_a * 2.5)
d = Daemon("budget", "--memory-budget", str(budget), "--keep-alive", "-1")
results = []
def worker():
    results.append(d.chat("b"))
threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join(120)
ok(len(results) == 4 and all(s == 200 and r["model"] == "b" for s, r in results),
   "4 concurrent requests during b's load: all answered by b")
ok(d.log_count(r"loading b from the store") == 1 and d.log_count(r"loaded b ") == 1,
   "b loaded once")
ok(d.chat("a")[0] == 200, "a loaded beside b")
ok(sorted(d.resident()) == ["a", "b"], "a and b resident")
ok(d.chat("b")[0] == 200, "b used again: a is now the least recently used")
s, r = d.chat("c")
ok(s == 200 and r["model"] == "c", "c loads")
ok(sorted(d.resident()) == ["b", "c"], "the budget unloaded a, the least recently used: %s"
   % sorted(d.resident()))
ok(d.log_count(r"unloaded a \(memory budget\)") == 1, "the log says why a went")
s, r = d.chat("c", keep_alive=0)
ok(s == 200, "keep_alive 0 accepted")
ok(d.wait_for(lambda: "c" not in d.resident()), "keep_alive 0: c unloaded after its request")
s, r = d.chat("a", keep_alive="3s")
ok(s == 200, "keep_alive \"3s\" accepted")
res = d.resident()
ok("a" in res and 0 <= res["a"]["expires_in_seconds"] <= 3.01,
   "a resident, expiring within 3 s: %s" % res.get("a"))
ok(d.wait_for(lambda: "a" not in d.resident(), 30), "keep_alive 3s: a unloaded")
ok("b" in d.resident(), "b (keep_alive -1) stays")
s, r = d.chat("b", keep_alive="soon")
ok(s == 400 and r["error"]["param"] == "keep_alive", "a malformed keep_alive: 400")
ok(d.stop() == 0, "clean stop")

# ---- a budget for one model, held by a busy one: the next load waits for it
os.environ["HEARTH_DEBUG_STEP_DELAY_MS"] = "40"
d = Daemon("busy", "--memory-budget", str(int(bytes_a * 1.5)))
del os.environ["HEARTH_DEBUG_STEP_DELAY_MS"]
ends = {}
def long_a():
    s, r = d.chat("a", max_tokens=40, temperature=0, seed=1)
    ends["a"] = (s, time.time(), r.get("usage", {}).get("completion_tokens"))
ta = threading.Thread(target=long_a)
ta.start()
ok(d.wait_for(lambda: d.resident().get("a", {}).get("running") == 1), "a is generating")
s, r = d.chat("b")
ends["b"] = (s, time.time())
ta.join(120)
ok(ends["a"][0] == 200 and ends["b"][0] == 200, "both answered")
ok(ends["b"][1] >= ends["a"][1], "b was answered after a finished (it waited for the memory)")
ok(d.log_count(r"b waits for memory") == 1 and d.log_count(r"unloaded a \(memory budget\)") == 1,
   "the log says b waited and a went for it")
ok(list(d.resident()) == ["b"], "b alone is resident")
ok(d.stop() == 0, "clean stop")

# ---- a budget smaller than any model
d = Daemon("small", "--memory-budget", "100k")
s, r = d.chat("a")
ok(s == 503 and "memory_budget" in r["error"]["message"], "a model above the budget: %s"
   % r.get("error"))
ok(d.stop() == 0, "clean stop")

# ---- --model beside the store: the default, never unloaded
d = Daemon("pinned", "--model", model, "--keep-alive", "0")
pinned = os.path.basename(model)[:-5]
s, r = d.chat(None)
ok(s == 200 and r["model"] == pinned, "no model named: the --model one (%s)" % r.get("model"))
ok(d.chat("b")[0] == 200, "a store model beside it")
ok(d.wait_for(lambda: "b" not in d.resident()), "b unloaded (keep_alive 0)")
ok(d.chat(pinned, keep_alive=0)[0] == 200 and pinned in d.resident(),
   "the --model model stays loaded")
ok(d.stop() == 0, "clean stop")

# ---- bad values stop start-up
for flag, val in (("--keep-alive", "later"), ("--memory-budget", "lots")):
    p = subprocess.run([hearthd, "--port", "0", "--store", store, flag, val],
                       capture_output=True, text=True, timeout=30)
    ok(p.returncode == 2 and flag[2:].replace("-", "_") in p.stderr,
       "%s %s: exit 2 naming the key (%d: %s)" % (flag, val, p.returncode, p.stderr.strip()))

sys.exit(1 if failed else 0)
EOF
scratch_end $?
