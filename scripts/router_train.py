#!/usr/bin/env python3
"""router_train.py - train and evaluate the router's complexity score.

hearthd's router scores a chat request as
    score = sigmoid(bias + sum_i w_i * x_i),  "cloud" when score >= threshold,
over the features that `hearth route --json` reports. This script fits the
weights on the labelled set data/router/prompts.jsonl (issue 11) and reports
how well they separate "local" from "cloud" on a part held out from training.

    # train on the features hearth computes, write the weights file
    python3 scripts/router_train.py --hearth build/hearth --model M.gguf \\
        --write conf/router-weights.txt
    # evaluate a weights file on the held-out part only (through hearth)
    python3 scripts/router_train.py --hearth build/hearth --model M.gguf \\
        --eval-only --weights conf/router-weights.txt

--features FILE reads `hearth route --json --batch` output saved earlier
(--save-features writes it) instead of running hearth.

Split: an item is held out when the first byte of sha256(id) is below 64
(25% of ids, fixed forever by the id alone); the rest train.
Fit: logistic regression, L2 penalty (lambda 0.01 by default, bias not
penalised) on features standardised over the training part, Newton's method
with step halving; the scaling is folded back so the file's weights apply to
the raw feature values. battery_low, thermal and queue_wait describe the
device, are 0 for every training item and are not learned: their weights are
copied from the previous weights file (or 2.0, 1.5, 3.0) and set by hand.

Standard library only. Bad input ends the script with one line on stderr
and exit status 2; a failed --self-test exits 1.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile

FEATURES = ["prompt_ctx", "length_log", "turns", "code", "math",
            "multi_step", "output_len", "non_latin", "tools", "nll",
            "battery_low", "thermal", "queue_wait"]
DEVICE_DEFAULTS = {"battery_low": 2.0, "thermal": 1.5, "queue_wait": 3.0}
LEARNED = [f for f in FEATURES if f not in DEVICE_DEFAULTS]
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "data", "router", "prompts.jsonl")
REQUEST_KEYS = {"messages", "max_tokens", "tools", "response_format"}
ROLES = {"system", "user", "assistant"}
SHARES = (0.5, 0.6, 0.7)


class InputError(Exception):
    """Bad input: reported as one line, exit status 2."""


# ------------------------------------------------------------ the data set

def read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError("%s: %s" % (path, e))


def write_text(path, text):
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise InputError("%s: %s" % (path, e))


def held_out(item_id):
    """The fixed split: first byte of sha256(id) in the lowest quarter."""
    return hashlib.sha256(item_id.encode("utf-8")).digest()[0] < 64


def json_lines(lines, source):
    """Yields (where, line, object) for each non-blank line of JSON Lines
    text; a line that is not a JSON object is an error."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = "%s:%d" % (source, n)
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise InputError("%s: not JSON: %s" % (where, e))
        if not isinstance(obj, dict):
            raise InputError("%s: not a JSON object" % where)
        yield where, line, obj


def load_data(path):
    """Reads and checks the labelled set; returns [(id, label, raw line)]."""
    items, seen = [], set()
    for where, line, obj in json_lines(read_text(path).split("\n"), path):
        item_id, label, req = obj.get("id"), obj.get("label"), obj.get("request")
        if not isinstance(item_id, str) or not item_id:
            raise InputError("%s: no string \"id\"" % where)
        if item_id in seen:
            raise InputError("%s: id %s repeated" % (where, item_id))
        seen.add(item_id)
        if label not in ("local", "cloud"):
            raise InputError("%s: %s: label must be \"local\" or \"cloud\"" % (where, item_id))
        check_request(req, "%s: %s" % (where, item_id))
        items.append((item_id, label, line))
    if not items:
        raise InputError("%s: no items" % path)
    return items


def check_request(req, where):
    if not isinstance(req, dict):
        raise InputError("%s: \"request\" must be an object" % where)
    extra = sorted(set(req) - REQUEST_KEYS)
    if extra:
        raise InputError("%s: unexpected request key \"%s\"" % (where, extra[0]))
    msgs = req.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise InputError("%s: \"messages\" must be a non-empty array" % where)
    for m in msgs:
        if (not isinstance(m, dict) or m.get("role") not in ROLES
                or not isinstance(m.get("content"), str) or not m["content"].strip()):
            raise InputError("%s: each message needs a role (system/user/assistant) "
                             "and non-empty string content" % where)
    if msgs[-1]["role"] != "user":
        raise InputError("%s: the last message must be the user's" % where)
    mt = req.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        raise InputError("%s: max_tokens must be a positive integer" % where)
    if "tools" in req and (not isinstance(req["tools"], list) or not req["tools"]):
        raise InputError("%s: tools must be a non-empty array" % where)
    if "response_format" in req and not isinstance(req["response_format"], dict):
        raise InputError("%s: response_format must be an object" % where)


def balance(labels):
    n = len(labels)
    c = sum(labels)
    return "%d (%d local / %d cloud, %.0f%% cloud)" % (n, n - c, c, 100.0 * c / n if n else 0)


# ------------------------------------------------------- hearth route output

def run_hearth(hearth, model, lines, weights=None):
    """Runs `hearth route --json --batch` over the given lines; returns its
    output lines (one per input line)."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8",
                                     delete=False) as tmp:
        tmp.write("\n".join(lines) + "\n")
    cmd = [hearth, "route", "-m", model, "--json", "--batch", tmp.name]
    if weights:
        cmd += ["--weights", weights]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise InputError("%s: %s" % (hearth, e))
    finally:
        os.unlink(tmp.name)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError("hearth route exited with %d: %s"
                         % (proc.returncode, err[-1] if err else "no message"))
    out = [l for l in proc.stdout.decode("utf-8", "replace").split("\n") if l.strip()]
    if len(out) != len(lines):
        raise InputError("hearth route printed %d lines for %d requests" % (len(out), len(lines)))
    return out


def parse_route_output(lines, source):
    """Parses `hearth route --json` lines: {id: row} and the failed lines
    [(id, error)]. A row is {"x": {feature: value}, "score", "decision",
    "threshold"}."""
    rows, failed = {}, []
    for where, _, obj in json_lines(lines, source):
        if not isinstance(obj.get("id"), str):
            raise InputError("%s: no string \"id\"" % where)
        item_id = obj["id"]
        if item_id in rows or any(f[0] == item_id for f in failed):
            raise InputError("%s: id %s repeated" % (where, item_id))
        if "error" in obj:
            failed.append((item_id, str(obj["error"])))
            continue
        feats = obj.get("features")
        if not isinstance(feats, dict):
            raise InputError("%s: %s: no \"features\" object" % (where, item_id))
        for name in feats:
            if name not in FEATURES:
                raise InputError("%s: unknown feature \"%s\" (add it to FEATURES in "
                                 "router_train.py)" % (where, name))
        x = {}
        for name in FEATURES:
            f = feats.get(name)
            v = f.get("value") if isinstance(f, dict) else None
            if not is_number(v):
                raise InputError("%s: %s: feature %s has no finite \"value\"" % (where, item_id, name))
            x[name] = float(v)
        row = {"x": x, "score": obj.get("score"), "decision": obj.get("decision"),
               "threshold": obj.get("threshold")}
        if not is_number(row["score"]) or row["decision"] not in ("local", "cloud"):
            raise InputError("%s: %s: no numeric \"score\" and local/cloud \"decision\""
                             % (where, item_id))
        rows[item_id] = row
    return rows, failed


def is_number(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v))


def join(items, rows, failed, source):
    """Pairs each item with its row: [(id, y, row)] (y = 1 for cloud) and
    the failed ids among the items."""
    known = {i[0] for i in items}
    for item_id in list(rows) + [f[0] for f in failed]:
        if item_id not in known:
            raise InputError("%s: id %s is not in the data set" % (source, item_id))
    failed_ids = {f[0] for f in failed}
    out = []
    for item_id, label, _ in items:
        if item_id in failed_ids:
            continue
        if item_id not in rows:
            raise InputError("%s: no line for %s" % (source, item_id))
        out.append((item_id, 1 if label == "cloud" else 0, rows[item_id]))
    return out


# ------------------------------------------------------------------- maths

def sigmoid(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def log1pexp(z):
    return z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))


def solve(a, b):
    """Solves a x = b (a: list of rows) by Gaussian elimination with
    partial pivoting; a and b are not changed."""
    n = len(b)
    m = [list(a[i]) + [b[i]] for i in range(n)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        if abs(m[p][c]) < 1e-300:
            raise ValueError("singular system")
        m[c], m[p] = m[p], m[c]
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            if f:
                for k in range(c, n + 1):
                    m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        s = m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))
        x[r] = s / m[r][r]
    return x


def fit_logistic(xs, ys, lam, max_iter=100):
    """Fits P(y=1|x) = sigmoid(b + w.x) minimising mean log-loss plus
    lam/2 * |w|^2 (b not penalised) by Newton's method on standardised
    columns. Columns that are constant get weight 0. Returns (b, w,
    iterations) with w for the raw columns."""
    n, d = len(xs), len(xs[0])
    mean = [sum(r[j] for r in xs) / n for j in range(d)]
    std = [math.sqrt(sum((r[j] - mean[j]) ** 2 for r in xs) / n) for j in range(d)]
    cols = [j for j in range(d) if std[j] > 1e-12]
    z = [[1.0] + [(r[j] - mean[j]) / std[j] for j in cols] for r in xs]
    k = len(cols) + 1
    theta = [0.0] * k

    def loss(t):
        s = 0.0
        for zi, yi in zip(z, ys):
            eta = sum(a * b for a, b in zip(t, zi))
            s += log1pexp(eta) - yi * eta
        return s / n + 0.5 * lam * sum(v * v for v in t[1:])

    cur = loss(theta)
    it = 0
    for it in range(1, max_iter + 1):
        g = [0.0] * k
        h = [[0.0] * k for _ in range(k)]
        for zi, yi in zip(z, ys):
            p = sigmoid(sum(a * b for a, b in zip(theta, zi)))
            r, wgt = p - yi, p * (1.0 - p)
            for a in range(k):
                g[a] += r * zi[a]
                wa = wgt * zi[a]
                row = h[a]
                for b in range(a, k):
                    row[b] += wa * zi[b]
        for a in range(k):
            g[a] /= n
            for b in range(a, k):
                h[a][b] /= n
                h[b][a] = h[a][b]
            if a:
                g[a] += lam * theta[a]
                h[a][a] += lam
        h[0][0] += 1e-12
        step = solve(h, g)
        t = 1.0
        while True:
            trial = [th - t * s for th, s in zip(theta, step)]
            new = loss(trial)
            if new <= cur + 1e-15 or t < 1e-6:
                break
            t *= 0.5
        theta, done = trial, max(abs(s) for s in step) * t < 1e-10 or cur - new < 1e-15
        cur = new
        if done:
            break
    w = [0.0] * d
    b = theta[0]
    for i, j in enumerate(cols):
        w[j] = theta[i + 1] / std[j]
        b -= theta[i + 1] * mean[j] / std[j]
    return b, w, it


def auc(scores, ys):
    """ROC-AUC by ranks (Mann-Whitney U), ties given their mean rank."""
    pos = sum(ys)
    neg = len(ys) - pos
    if pos == 0 or neg == 0:
        raise InputError("AUC needs both classes (have %d cloud, %d local)" % (pos, neg))
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        r = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = r
        i = j + 1
    rsum = sum(r for r, y in zip(ranks, ys) if y)
    return (rsum - pos * (pos + 1) / 2.0) / (pos * neg)


def at_threshold(scores, ys, thr):
    """(accuracy, local share) when score >= thr means cloud."""
    local = [s < thr for s in scores]
    right = sum(1 for l, y in zip(local, ys) if l == (y == 0))
    return right / len(ys), sum(local) / len(ys)


def threshold_for_share(scores, share):
    """A threshold below which about `share` of the scores fall (midway
    between neighbours; ties can make the share land elsewhere)."""
    s = sorted(scores)
    k = int(round(share * len(s)))
    if k <= 0:
        return s[0]
    if k >= len(s):
        return s[-1] + 1e-9
    return (s[k - 1] + s[k]) / 2.0


def score_with(weights, x):
    return sigmoid(weights["bias"] + sum(weights[f] * x[f] for f in FEATURES))


# ------------------------------------------------------------ weights file

def read_weights(path):
    w = {}
    for n, line in enumerate(read_text(path).split("\n"), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 2:
            raise InputError("%s:%d: expected \"name value\"" % (path, n))
        name, val = parts
        if name not in FEATURES and name not in ("bias", "threshold"):
            raise InputError("%s:%d: unknown name \"%s\"" % (path, n, name))
        if name in w:
            raise InputError("%s:%d: \"%s\" given twice" % (path, n, name))
        try:
            v = float(val)
        except ValueError:
            v = float("nan")
        if not math.isfinite(v):
            raise InputError("%s:%d: \"%s\" is not a finite number" % (path, n, val))
        w[name] = v
    for name in ["bias", "threshold"] + FEATURES:
        if name not in w:
            raise InputError("%s: no line for \"%s\"" % (path, name))
    if not 0.0 < w["threshold"] < 1.0:
        raise InputError("%s: threshold must lie between 0 and 1" % path)
    return w


def num(v):
    s = "%.6g" % v
    return "0" if s in ("-0", "0") else s


def write_weights(path, weights, header):
    text = "".join("# %s\n" % h for h in header)
    text += "bias %s\nthreshold %s\n" % (num(weights["bias"]), num(weights["threshold"]))
    text += "".join("%s %s\n" % (f, num(weights[f])) for f in FEATURES)
    write_text(path, text)


# ----------------------------------------------------------------- reports

def report_split(pairs):
    train = [y for i, y, _ in pairs if not held_out(i)]
    test = [y for i, y, _ in pairs if held_out(i)]
    print("train:    %s" % balance(train))
    print("held-out: %s" % balance(test))


def report_scores(scores, ys, thr, name):
    acc, share = at_threshold(scores, ys, thr)
    print("%s: ROC-AUC %.3f, at threshold %s: accuracy %.3f, local share %.3f"
          % (name, auc(scores, ys), num(thr), acc, share))
    return acc, share


def report_shares(scores, ys):
    for share in SHARES:
        t = threshold_for_share(scores, share)
        acc, got = at_threshold(scores, ys, t)
        print("  threshold %s would give local share %.3f (accuracy %.3f)"
              % (num(t), got, acc))


def get_rows(args, items):
    if args.features:
        return parse_route_output(read_text(args.features).split("\n"), args.features)
    lines = [i[2] for i in items]
    out = run_hearth(args.hearth, args.model, lines,
                     args.weights if args.eval_only else None)
    for (item_id, _, _), line in zip(items, out):
        try:
            got = json.loads(line).get("id")
        except (ValueError, AttributeError):
            got = None
        if got != item_id:
            raise InputError("hearth route: line for %s came back as %r (order lost)"
                             % (item_id, got))
    if args.save_features:
        write_text(args.save_features, "\n".join(out) + "\n")
    return parse_route_output(out, "hearth route")


def report_failed(failed):
    if failed:
        print("skipped %d requests that hearth route failed on (first: %s: %s)"
              % (len(failed), failed[0][0], failed[0][1]))


def eval_only(args, items):
    weights = read_weights(args.weights)
    test_items = [i for i in items if held_out(i[0])]
    rows, failed = get_rows(args, test_items)
    if args.features:   # saved output may cover the whole set
        rows = {k: v for k, v in rows.items() if held_out(k)}
        failed = [f for f in failed if held_out(f[0])]
    pairs = join(test_items, rows, failed, args.features or "hearth route")
    report_failed(failed)
    ys = [y for _, y, _ in pairs]
    mine = [score_with(weights, r["x"]) for _, _, r in pairs]
    print("weights:  %s" % args.weights)
    print("held-out: %s" % balance(ys))
    if args.features:
        print("scores recomputed from %s over the saved feature values" % args.weights)
        report_scores(mine, ys, weights["threshold"], "held-out")
        return 0
    scores = [float(r["score"]) for _, _, r in pairs]
    local = sum(1 for _, _, r in pairs if r["decision"] == "local")
    print("held-out: ROC-AUC %.3f, local share %.3f (hearth's decisions at threshold %s)"
          % (auc(scores, ys), local / len(pairs), num(weights["threshold"])))
    if abs(auc(scores, ys) - auc(mine, ys)) >= 5e-4:
        print("  (ROC-AUC %.3f from the file's formula at full precision: hearth's "
              "printed scores have ties)" % auc(mine, ys))
    diff = max(abs(a - b) for a, b in zip(scores, mine))
    thr = {r["threshold"] for _, _, r in pairs}
    print("hearth's scores vs this file's formula: largest difference %.2g" % diff)
    if diff > 1e-3 or thr != {weights["threshold"]}:
        print("WARNING: hearth route does not apply %s as written (threshold %s)"
              % (args.weights, sorted(thr)))
    return 0


def train(args, items):
    prev = read_weights(args.weights) if args.weights else None
    if prev is None and args.write and os.path.exists(args.write):
        prev = read_weights(args.write)
    rows, failed = get_rows(args, items)
    source = args.features or "hearth route"
    pairs = join(items, rows, failed, source)
    report_failed(failed)
    report_split(pairs)
    tr = [(y, r["x"]) for i, y, r in pairs if not held_out(i)]
    te = [(y, r["x"]) for i, y, r in pairs if held_out(i)]
    for name, part in (("train", tr), ("held-out", te)):
        if len({y for y, _ in part}) < 2:
            raise InputError("the %s part needs both classes" % name)
    for f in DEVICE_DEFAULTS:
        if any(x[f] != 0.0 for _, x in tr):
            raise InputError("%s: device feature %s is not 0 in training" % (source, f))
    ys = [y for y, _ in tr]
    # Every feature is built to grow with the need for a large model, so a
    # negative weight is collinearity or noise in the set, and would turn
    # round outside it (a fuller context pulling towards local). Fit, drop
    # the most negative feature (weight 0), fit again, until none is.
    active = list(LEARNED)
    dropped = []
    while True:
        xs = [[x[f] for f in active] for _, x in tr]
        b, w, iters = fit_logistic(xs, ys, args.lam)
        neg = min(range(len(active)), key=lambda j: w[j]) if active else None
        if neg is None or w[neg] >= 0:
            break
        dropped.append(active.pop(neg))
    weights = {"bias": b, "threshold": args.threshold}
    weights.update({f: 0.0 for f in LEARNED})
    weights.update(zip(active, w))
    for f, d in DEVICE_DEFAULTS.items():
        weights[f] = prev[f] if prev else d
    # the file holds 6 significant digits: evaluate what the file will hold
    weights = {k: float(num(v)) for k, v in weights.items()}
    print("fit: logistic regression, L2 lambda %s, Newton's method, %d iterations"
          % (num(args.lam), iters))
    print("  %-18s %10s" % ("feature", "weight"))
    for f in ["bias"] + LEARNED:
        print("  %-18s %10s%s" % (f, num(weights[f]), "  (negative: pulls towards local)"
                                  if f != "bias" and weights[f] < 0 else ""))
    for f in DEVICE_DEFAULTS:
        print("  %-18s %10s  (device state, set by hand: %s)"
              % (f, num(weights[f]), "from the previous file" if prev else "default"))
    if dropped:
        print("  set to 0 (their fitted weights were negative): %s" % ", ".join(dropped))
    const = [f for f in LEARNED if len({x[f] for _, x in tr}) == 1]
    if const:
        print("  constant in training, weight 0: %s" % ", ".join(const))

    tr_s = [score_with(weights, x) for _, x in tr]
    te_s = [score_with(weights, x) for _, x in te]
    te_y = [y for y, _ in te]
    print("train: ROC-AUC %.3f" % auc(tr_s, ys))
    acc, share = report_scores(te_s, te_y, args.threshold, "held-out")
    report_shares(te_s, te_y)
    why = threshold_reason(args, tr_s, ys)
    print("threshold %s: %s" % (num(args.threshold), why))
    if args.write:
        argv = ["python3", "scripts/router_train.py"] + sys.argv[1:]
        header = [
            "hearth router weights: score = sigmoid(bias + sum of weight * feature value);",
            "the request goes to the cloud when score >= threshold.",
            "Made by: %s" % shlex.join(argv),
            "Date: %s" % datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
            "Data: %s, train %d, held-out %d (%d skipped)"
            % (shown_path(args.data), len(tr), len(te), len(failed)),
            "Held-out ROC-AUC %.3f, accuracy %.3f, local share %.3f at threshold %s"
            % (auc(te_s, te_y), acc, share, num(args.threshold)),
            "Fit: logistic regression, L2 lambda %s on standardised features, Newton's"
            % num(args.lam),
            "method; weights folded back to apply to the raw feature values.",
            "battery_low, thermal, queue_wait: device state, 0 in the training set, not",
            "learned: set by hand (%s)." % ("copied from the previous weights file"
                                            if prev else "defaults 2.0, 1.5, 3.0"),
        ]
        write_weights(args.write, weights, header)
        print("wrote %s" % args.write)
    return 0


def shown_path(path):
    """The data file's path relative to the source tree when it is in it."""
    root = os.path.dirname(HERE)
    rel = os.path.relpath(os.path.abspath(path), root)
    return path if rel.startswith("..") else rel


def threshold_reason(args, tr_s, ys):
    if args.threshold_given:
        return "given with --threshold"
    best_t, best_acc = 0.5, at_threshold(tr_s, ys, 0.5)[0]
    for t in sorted(set(tr_s)):
        acc = at_threshold(tr_s, ys, t)[0]
        if acc > best_acc + 1e-12:
            best_t, best_acc = t, acc
    gain = best_acc - at_threshold(tr_s, ys, 0.5)[0]
    why = ("the training classes are %.0f%% cloud and a needless cloud call is taken "
           "as costly as a poor local answer, so the fitted probability's midpoint is "
           "the decision point; the best threshold on the training part (%s) gains "
           "%.1f points of accuracy there" % (100.0 * sum(ys) / len(ys), num(best_t),
                                              100.0 * gain))
    if gain > 0.02:
        why += " (worth a look: --threshold sets another)"
    return why


def check_data(items):
    ys = [1 if l == "cloud" else 0 for _, l, _ in items]
    test = [y for (i, _, _), y in zip(items, ys) if held_out(i)]
    train_ = [y for (i, _, _), y in zip(items, ys) if not held_out(i)]
    print("data:     %s" % balance(ys))
    print("train:    %s" % balance(train_))
    print("held-out: %s" % balance(test))
    return 0


# -------------------------------------------------------------------- main

class Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("router_train: %s\n" % message)
        sys.exit(2)


def main(argv):
    ap = Parser(description="Train or evaluate hearth's router weights "
                "(see the docstring and docs/router.md).")
    ap.add_argument("--data", default=DEFAULT_DATA, help="labelled set (JSONL)")
    ap.add_argument("--hearth", help="the hearth binary")
    ap.add_argument("--model", help="GGUF model for hearth route -m")
    ap.add_argument("--features", help="saved hearth route --json --batch output")
    ap.add_argument("--save-features", help="keep hearth route's output in this file")
    ap.add_argument("--weights", help="weights file: evaluated with --eval-only, else the "
                    "previous file whose device-state weights are kept")
    ap.add_argument("--write", help="write the trained weights file here")
    ap.add_argument("--eval-only", action="store_true", help="score held-out with --weights")
    ap.add_argument("--lambda", dest="lam", type=float, default=1e-2, help="L2 strength")
    ap.add_argument("--threshold", type=float, help="decision threshold (default 0.5)")
    ap.add_argument("--self-test", action="store_true", help="test this script's maths")
    ap.add_argument("--check-data", action="store_true", help="check the set, print its make-up")
    args = ap.parse_args(argv)
    if args.self_test:
        sys.path.insert(0, HERE)
        import router_train_test
        return router_train_test.run()
    args.threshold_given = args.threshold is not None
    if args.threshold is None:
        args.threshold = 0.5
    if not 0.0 < args.threshold < 1.0:
        ap.error("--threshold must lie between 0 and 1")
    if not (math.isfinite(args.lam) and args.lam >= 0):
        ap.error("--lambda must be a finite number >= 0")
    items = load_data(args.data)
    if args.check_data:
        return check_data(items)
    if bool(args.features) == bool(args.hearth):
        ap.error("give either --hearth PATH --model GGUF or --features FILE")
    if args.hearth and not args.model:
        ap.error("--hearth needs --model GGUF")
    if args.features and args.save_features:
        ap.error("--save-features needs --hearth")
    if args.eval_only:
        if not args.weights:
            ap.error("--eval-only needs --weights FILE")
        if args.write:
            ap.error("--eval-only does not write weights")
        return eval_only(args, items)
    return train(args, items)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except InputError as e:
        sys.stderr.write("router_train: %s\n" % e)
        sys.exit(2)
