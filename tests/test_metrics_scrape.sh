#!/bin/sh
# test_metrics_scrape.sh - GET /metrics through a real hearthd serving stories260K
# (docs/api/metrics.md). A few known requests (two chat completions, one
# streamed, a 404 for an unknown model, a 400 for a broken body, an unknown
# path, a foreign Host), then a scrape: every count moved exactly as they say (requests by
# endpoint and status, tokens as their usage said, one time-to-first-token
# per generation, one inter-token figure per generation of two tokens or
# more, route decisions), the gauges are at rest, and the whole text passes
# a strict parser of the Prometheus text format 0.0.4. Then an upstream
# that refuses connections (a cloud decision, its error, the fallback), the
# API key (needed here, unlike /health), [server] metrics = no (a 404 in the
# API's error shape) and yes after SIGHUP. Exit 77 (skip) without the model
# or python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/hearthd.sh"
hearthd_needs_model python3

check() { # MODE BASE [ARGS...]: the checks below, in python3
    python3 - "$@" <<'EOF'
import json, re, sys, time, urllib.error, urllib.request

mode, base = sys.argv[1], sys.argv[2]
failed = []

def ok(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failed.append(what)

def request(method, path, body=None, headers=None):
    """(status, headers, body bytes); errors are answers too."""
    req = urllib.request.Request(base + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()

# ---- a strict parser of the text exposition format 0.0.4
NAME = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL = re.compile(r'[a-zA-Z_][a-zA-Z0-9_]*$')
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

def value(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf"))
    if not re.fullmatch(r'[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?', s):
        raise ValueError("bad value %r" % s)
    return float(s)

def labels_of(s, i):
    """Labels from s[i] == '{' to the '}': (dict, index after '}')."""
    out, i = {}, i + 1
    while s[i] != '}':
        m = re.match(r'([a-zA-Z_][a-zA-Z0-9_]*)="', s[i:])
        if not m:
            raise ValueError("bad label name at %r" % s[i:])
        name, i, v = m.group(1), i + m.end(), []
        if name in out:
            raise ValueError("label %s repeated" % name)
        while s[i] != '"':
            if s[i] == '\\':
                esc = {'\\': '\\', 'n': '\n', '"': '"'}.get(s[i + 1])
                if esc is None:
                    raise ValueError("bad escape in a label value")
                v.append(esc)
                i += 2
            elif s[i] == '\n':
                raise ValueError("newline in a label value")
            else:
                v.append(s[i])
                i += 1
        out[name] = ''.join(v)
        i += 1
        if s[i] == ',':
            i += 1
        elif s[i] != '}':
            raise ValueError("expected , or }")
    return out, i + 1

def parse(text):
    """{family: {"type", "help", "samples": [(name, labels, value)]}}; raises on any
    broken rule."""
    if not text.endswith("\n"):
        raise ValueError("no newline at the end")
    fams, order, cur = {}, [], None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        if not line:
            raise ValueError("line %d: empty" % n)
        if line.startswith("#"):
            m = re.match(r'# (HELP|TYPE) (\S+) (.*)$', line)
            if not m or not NAME.match(m.group(2)):
                raise ValueError("line %d: a comment that is not HELP or TYPE" % n)
            kind, name, rest = m.groups()
            f = fams.get(name)
            if f is None:
                f = fams[name] = {"type": None, "help": None, "samples": []}
                order.append(name)
            elif cur != name:
                raise ValueError("line %d: %s declared again" % (n, name))
            if f["samples"]:
                raise ValueError("line %d: %s after samples" % (n, kind))
            key = kind.lower()
            if f[key] is not None:
                raise ValueError("line %d: %s repeated" % (n, kind))
            if kind == "TYPE" and rest not in TYPES:
                raise ValueError("line %d: unknown type %s" % (n, rest))
            if kind == "HELP" and re.search(r'\\[^\\n]', rest.replace('\\\\', '')):
                raise ValueError("line %d: bad escape in HELP" % n)
            f[key] = rest
            cur = name
            continue
        m = re.match(r'[a-zA-Z_:][a-zA-Z0-9_:]*', line)
        if not m:
            raise ValueError("line %d: bad metric name" % n)
        name, i = m.group(0), m.end()
        labels = {}
        if i < len(line) and line[i] == '{':
            labels, i = labels_of(line, i)
        if line[i:i + 1] != ' ' or ' ' in line[i + 1:]:
            raise ValueError("line %d: expected one space and a value" % n)
        v = value(line[i + 1:])
        fam = name if name in fams and fams[name]["type"] != "histogram" else None
        for suf in ("_bucket", "_sum", "_count"):
            b = name[:-len(suf)]
            if fam is None and name.endswith(suf) and fams.get(b, {}).get("type") == "histogram":
                fam = b
        if fam is None or fams[fam]["type"] is None:
            raise ValueError("line %d: %s before its TYPE" % (n, name))
        if fam != cur:
            raise ValueError("line %d: %s away from its family" % (n, name))
        key = (name, tuple(sorted(labels.items())))
        if any((s[0], tuple(sorted(s[1].items()))) == key for s in fams[fam]["samples"]):
            raise ValueError("line %d: series repeated" % n)
        fams[fam]["samples"].append((name, labels, v))
    for name, f in fams.items():
        if f["help"] is None or f["type"] is None:
            raise ValueError("%s without HELP or TYPE" % name)
        if f["type"] == "counter" and not name.endswith("_total"):
            raise ValueError("counter %s not named _total" % name)
        if f["type"] == "histogram":
            series = {}
            for s, l, v in f["samples"]:
                if s == name + "_bucket":
                    rest = tuple(sorted((k, x) for k, x in l.items() if k != "le"))
                    series.setdefault(rest, []).append((value(l["le"]), v))
            for rest, buckets in series.items():
                les = [b[0] for b in buckets]
                counts = [b[1] for b in buckets]
                if les != sorted(les) or len(set(les)) != len(les) or les[-1] != float("inf"):
                    raise ValueError("%s: le not ascending to +Inf" % name)
                if counts != sorted(counts):
                    raise ValueError("%s: buckets not cumulative" % name)
                lab = dict(rest)
                count = [v for s, l, v in f["samples"] if s == name + "_count" and l == lab]
                total = [v for s, l, v in f["samples"] if s == name + "_sum" and l == lab]
                if count != [counts[-1]] or len(total) != 1:
                    raise ValueError("%s: _count is not the +Inf bucket, or no _sum" % name)
    return fams

def get(fams, name, **labels):
    """A sample's value (a family's or a histogram part's), None when absent."""
    for f in fams.values():
        for s, l, v in f["samples"]:
            if s == name and l == labels:
                return v
    return None

scrapes = 0
def scrape(headers=None):
    global scrapes
    status, h, body = request("GET", "/metrics", headers=headers)
    scrapes += 1
    if status != 200:
        raise SystemExit("FAIL /metrics answered %d: %s" % (status, body[:300]))
    ct = h.get("Content-Type")
    if ct != "text/plain; version=0.0.4; charset=utf-8":
        raise SystemExit("FAIL Content-Type %r" % ct)
    return parse(body.decode("utf-8"))

def wait_for(cond, what, secs=20):
    deadline = time.monotonic() + secs
    while True:
        fams = scrape()
        if cond(fams):
            return fams
        if time.monotonic() > deadline:
            ok(False, what + " (within %d s)" % secs)
            return fams
        time.sleep(0.05)

def chat(extra, timeout=60):
    body = {"messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 6}
    body.update(extra)
    t0 = time.monotonic()
    status, h, out = request("POST", "/v1/chat/completions", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
    return status, out, time.monotonic() - t0

CHAT = "/v1/chat/completions"

if mode == "counts":
    pid = int(sys.argv[3])
    # the parser itself refuses what breaks the format
    H = "# HELP h x\n# TYPE h histogram\n"
    for bad in ("a 1\n", "# HELP a x\n# TYPE a gauge\na 1",
                "# HELP a x\n# TYPE a gauge\na{l=\"\\t\"} 1\n",
                "# HELP a x\n# TYPE a gauge\na 1\na 1\n",
                "# HELP a_total x\n# TYPE a_total counter\n# TYPE a_total counter\n",
                "# HELP a x\n# TYPE a counter\na 1\n",
                H + 'h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
                H + 'h_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
                H + 'h_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'):
        try:
            parse(bad)
            ok(False, "the parser refuses %r" % bad)
        except ValueError:
            pass
    fams = scrape()
    ok(get(fams, "hearth_http_requests_total", method="GET", endpoint="/metrics",
           status="200") is None, "a fresh daemon has counted no scrape yet")
    ok(get(fams, "hearth_time_to_first_token_seconds_count") == 0, "no generation yet")
    usages, secs = [], []
    for extra in ({}, {"temperature": 0}):
        status, out, dt = chat(extra)
        ok(status == 200, "chat completion: %d" % status)
        usages.append(json.loads(out)["usage"])
        secs.append(dt)
    status, out, dt = chat({"stream": True, "stream_options": {"include_usage": True}})
    events = [json.loads(l[6:]) for l in out.decode().split("\n")
              if l.startswith("data: ") and l != "data: [DONE]"]
    ok(status == 200 and events and events[-1].get("usage"), "streamed chat with its usage")
    usages.append(events[-1]["usage"])
    secs.append(dt)
    status, out, _ = chat({"model": "no-such-model"})
    ok(status == 404 and b"model_not_found" in out, "unknown model: 404")
    status, _, out = request("POST", CHAT, b"{not json", {"Content-Type": "application/json"})
    ok(status == 400, "broken JSON body: 400")
    status, _, _ = request("GET", "/no/such/path")
    ok(status == 404, "unknown path: 404")
    status, _, _ = request("GET", "/health", headers={"Host": "evil.example.com"})
    ok(status == 403, "a foreign Host: 403 (the door)")

    # the last request's count lands as its connection ends; the slots
    # free at the scheduler's next pass
    fams = wait_for(lambda f: get(f, "hearth_http_requests_total", method="GET",
                                  endpoint="other", status="404") == 1 and
                    get(f, "hearth_slots_busy") == 0, "the requests counted, slots free")
    fams = scrape()
    R = "hearth_http_requests_total"
    ok(get(fams, R, method="POST", endpoint=CHAT, status="200") == 3, "3 chat 200s")
    ok(get(fams, R, method="POST", endpoint=CHAT, status="404") == 1, "1 chat 404")
    ok(get(fams, R, method="POST", endpoint=CHAT, status="400") == 1, "1 chat 400")
    ok(get(fams, R, method="GET", endpoint="other", status="404") == 1,
       "the unknown path as endpoint other")
    ok(get(fams, R, method="GET", endpoint="/health", status="403") == 1,
       "the door's refusal under the endpoint asked for")
    ok(get(fams, R, method="GET", endpoint="/metrics", status="200") == scrapes - 1,
       "every earlier scrape counted (%d)" % (scrapes - 1))
    n_series = sum(len(f["samples"]) for n, f in fams.items() if n == R)
    ok(n_series == 6, "no other request series (%d)" % n_series)
    ok(get(fams, "hearth_http_requests_in_flight") == 1, "in flight: the scrape itself")

    prompt = sum(u["prompt_tokens"] for u in usages)
    completion = sum(u["completion_tokens"] for u in usages)
    cached = sum(u.get("prompt_tokens_details", {}).get("cached_tokens", 0) for u in usages)
    ok(get(fams, "hearth_prompt_tokens_total") == prompt, "prompt tokens = usage (%d)" % prompt)
    ok(get(fams, "hearth_completion_tokens_total") == completion,
       "completion tokens = usage (%d)" % completion)
    ok(get(fams, "hearth_prompt_tokens_cached_total") == cached,
       "cached prompt tokens = usage (%d)" % cached)
    T, I = "hearth_time_to_first_token_seconds", "hearth_inter_token_latency_seconds"
    ok(get(fams, T + "_count") == 3, "one time to first token per generation")
    ok(0 < get(fams, T + "_sum") <= sum(secs),
       "times to first token within the requests' times (%.3f <= %.3f)"
       % (get(fams, T + "_sum"), sum(secs)))
    two = sum(1 for u in usages if u["completion_tokens"] >= 2)
    ok(get(fams, I + "_count") == two, "one inter-token figure per generation of 2+ tokens (%d)"
       % two)
    ok(get(fams, I + "_sum") <= sum(secs), "inter-token figures within the requests' times")
    ok(fams[T]["type"] == "histogram" and fams[I]["type"] == "histogram", "histograms")

    D = "hearth_route_decisions_total"
    ok(get(fams, D, route="local", reason="default") == 3,
       "3 route decisions: local, default (the errors never reached the router)")
    ok(get(fams, "hearth_route_fallbacks_total") == 0, "no fallbacks")
    ok("hearth_cloud_requests_total" not in fams, "no upstream, no cloud family")
    for g, want in (("hearth_queue_depth", 0), ("hearth_requests_running", 0),
                    ("hearth_slots", 2), ("hearth_slots_busy", 0), ("hearth_models_loaded", 1)):
        ok(get(fams, g) == want, "%s = %d" % (g, want))
    ok(get(fams, "hearth_forward_passes_total") > 0 and
       get(fams, "hearth_forward_tokens_total") >= completion - 3, "forward passes counted")
    load = get(fams, "hearth_model_load_seconds", model="stories260K")
    ok(load is not None and 0 < load < 60, "stories260K's load time (%s s)" % load)
    rss = get(fams, "hearth_resident_memory_bytes")
    with open("/proc/%d/status" % pid) as f:
        vmrss = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:")][0]
    ok(rss and vmrss / 2 < rss < vmrss * 2, "RSS %s near the kernel's VmRSS %d" % (rss, vmrss))
    status, h, body = request("HEAD", "/metrics")
    ok(status == 200 and body == b"" and h.get("Content-Type", "").startswith("text/plain"),
       "HEAD /metrics")

elif mode == "cloud":  # an upstream that refuses connections, fallback on
    status, _, _ = chat({"model": "dead"})
    ok(status == 200, "a request for the dead upstream answered locally")
    status, _, _ = request("POST", CHAT, json.dumps(
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode(),
        {"Content-Type": "application/json", "X-Hearth-Route": "local"})
    ok(status == 200, "X-Hearth-Route: local")
    fams = wait_for(lambda f: get(f, "hearth_http_requests_total", method="POST",
                                  endpoint=CHAT, status="200") == 2, "both counted")
    D = "hearth_route_decisions_total"
    ok(get(fams, D, route="cloud", reason="model") == 1, "decision: cloud, model")
    ok(get(fams, D, route="local", reason="header") == 1, "decision: local, header")
    ok(sum(len(f["samples"]) for n, f in fams.items() if n == D) == 2, "no other decision")
    ok(get(fams, "hearth_route_fallbacks_total") == 1, "one fallback")
    C = "hearth_cloud_requests_total"
    ok(get(fams, C, upstream="dead", result="error") == 1 and
       get(fams, C, upstream="dead", result="ok") == 0, "the upstream's error counted")
    ok(get(fams, "hearth_time_to_first_token_seconds_count") == 2,
       "both answered locally: two first tokens")

elif mode == "key":
    status, h, body = request("GET", "/metrics")
    ok(status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key",
       "/metrics without the key: 401")
    status, _, _ = request("GET", "/health")
    ok(status == 200, "/health still open")
    fams = scrape({"Authorization": "Bearer sekrit"})
    ok(get(fams, "hearth_http_requests_total", method="GET", endpoint="/metrics",
           status="401") == 1, "with the key: 200, and the refusal counted")
    status, _, _ = request("GET", "/metrics", headers={"x-api-key": "sekrit"})
    ok(status == 200, "the key as x-api-key")

elif mode == "off":
    status, h, body = request("GET", "/metrics")
    err = json.loads(body).get("error", {}) if status == 404 else {}
    ok(status == 404 and err.get("code") == "not_found" and "message" in err,
       "metrics = no: 404 in the API's error shape")

elif mode == "on":  # after SIGHUP with metrics = yes
    deadline = time.monotonic() + 20
    while request("GET", "/metrics")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    status, _, body = request("GET", "/metrics")
    ok(status == 200 and parse(body.decode()), "metrics = yes after SIGHUP: served")

sys.exit(1 if failed else 0)
EOF
}

# hearthd must stop cleanly (a sanitizer's report makes its status non-zero)
stop_ok() {
    hearthd_stop
    if [ "$hearthd_status" -ne 0 ]; then
        echo "FAIL hearthd exited with $hearthd_status"; cat "$log"; rc=1
    fi
}

scratch_new metrics
rc=0
hearthd_start --model "$model" --parallel 2
grep -q "metrics: on" "$log" || { echo "FAIL start-up line without 'metrics: on'"; rc=1; }
check counts "http://127.0.0.1:$port" "$pid" || rc=1
stop_ok

conf="$tmp/hearth.conf"
printf '[upstream.dead]\nurl = http://127.0.0.1:1/v1\nmodel = gone\nconnect_timeout = 5\n' >"$conf"
hearthd_start --model "$model" --config "$conf"
check cloud "http://127.0.0.1:$port" || rc=1
stop_ok

hearthd_start --model "$model" --api-key sekrit
check key "http://127.0.0.1:$port" || rc=1
stop_ok

printf '[server]\nmetrics = no\n' >"$conf"
hearthd_start --config "$conf"
grep -q "metrics: off" "$log" || { echo "FAIL start-up line without 'metrics: off'"; rc=1; }
check off "http://127.0.0.1:$port" || rc=1
printf '[server]\nmetrics = yes\n' >"$conf"
kill -HUP "$pid"
check on "http://127.0.0.1:$port" || rc=1
stop_ok
scratch_end $rc
