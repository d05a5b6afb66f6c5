#!/usr/bin/env python3
"""router_train_test.py - the checks behind `router_train.py --self-test`.

The maths of scripts/router_train.py on cases whose answers are known:
ROC-AUC on hand-computed cases (ties included) and against a pairwise
count, the linear solver, the logistic fit recovering known weights on
synthetic data whose columns have very different scales (so the folding
back of the standardisation is checked too), a constant column, separable
data under L2, the threshold for a local share, the id split, the weights
file's round trip and its bad cases, and the parsing of `hearth route`
output. Standard library only; deterministic (fixed seeds).
"""
import hashlib
import json
import math
import os
import random
import tempfile

import router_train as rt



def run():
    """Runs every check; prints the failures; returns the exit status."""
    fails = []

    def check(cond, what):
        if not cond:
            fails.append(what)

    check(abs(rt.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) - 0.75) < 1e-12, "rt.auc basic")
    check(abs(rt.auc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) - 0.875) < 1e-12, "rt.auc ties")
    check(rt.auc([0.3] * 6, [0, 1, 0, 1, 1, 0]) == 0.5, "rt.auc all tied")
    check(rt.auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0 and rt.auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0,
          "rt.auc perfect")
    rng = random.Random(11)
    s = [rng.choice([0.1, 0.2, 0.3, 0.4]) for _ in range(60)]
    y = [rng.randint(0, 1) for _ in range(60)]
    pairs = [(a, b) for a, ya in zip(s, y) if ya for b, yb in zip(s, y) if not yb]
    brute = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    check(abs(rt.auc(s, y) - brute) < 1e-12, "rt.auc vs pairwise count")

    x = rt.solve([[2.0, 1.0, -1.0], [-3.0, -1.0, 2.0], [-2.0, 1.0, 2.0]], [8.0, -11.0, -3.0])
    check(all(abs(a - b) < 1e-12 for a, b in zip(x, [2.0, 3.0, -1.0])), "rt.solve")

    # known weights on raw columns of very different scales and offsets, and
    # one constant column: the fit must find them on the raw scale
    true_b, true_w = -1.0, [2.0, -0.5, 0.004, 0.0]
    xs, ys = [], []
    for _ in range(6000):
        r = [rng.random(), 3.0 + 4.0 * rng.gauss(0, 1), 500.0 * rng.random(), 0.25]
        xs.append(r)
        ys.append(1 if rng.random() < rt.sigmoid(true_b + sum(a * b for a, b in zip(true_w, r))) else 0)
    b, w, _ = rt.fit_logistic(xs, ys, 1e-6)
    check(abs(b - true_b) < 0.3, "fit bias %.3f vs %.3f" % (b, true_b))
    check(abs(w[0] - 2.0) < 0.3 and abs(w[1] + 0.5) < 0.06 and abs(w[2] - 0.004) < 0.0006,
          "fit weights %s vs %s" % (w, true_w))
    check(w[3] == 0.0, "constant column weight")
    # separable data: L2 keeps the weights finite, the ranking is perfect
    xs = [[i / 10.0] for i in range(40)]
    ys = [1 if i >= 20 else 0 for i in range(40)]
    b, w, _ = rt.fit_logistic(xs, ys, 1e-2)
    sc = [rt.sigmoid(b + w[0] * r[0]) for r in xs]
    check(math.isfinite(w[0]) and w[0] > 0 and rt.auc(sc, ys) == 1.0, "separable fit")
    check(rt.at_threshold(sc, ys, 0.5) == (1.0, 0.5), "separable accuracy/share")
    # a stronger penalty shrinks the weight
    check(rt.fit_logistic(xs, ys, 1.0)[1][0] < w[0], "L2 shrinks")

    sc = [i / 10.0 for i in range(10)]
    t = rt.threshold_for_share(sc, 0.6)
    check(rt.at_threshold(sc, [0] * 5 + [1] * 5, t)[1] == 0.6, "threshold for share")

    ids = ["p%04d" % i for i in range(1, 4001)]
    frac = sum(rt.held_out(i) for i in ids) / len(ids)
    check(0.22 < frac < 0.28, "held-out fraction %.3f" % frac)
    check(rt.held_out("p0001") == (hashlib.sha256(b"p0001").digest()[0] < 64), "split rule")

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "w.txt")
        wt = {f: 0.1234567 * (i + 1) for i, f in enumerate(rt.FEATURES)}
        wt.update(bias=-1.25, threshold=0.5)
        rt.write_weights(p, wt, ["test"])
        back = rt.read_weights(p)
        check(all(abs(back[k] - wt[k]) <= 5e-6 * abs(wt[k]) for k in wt), "weights round trip")
        for bad in ("bias x\n", "bias 1\nbias 2\n", "nosuch 1\n", "bias inf\n", ""):
            with open(p, "w") as f:
                f.write(bad)
            try:
                rt.read_weights(p)
                check(False, "bad weights file accepted: %r" % bad)
            except rt.InputError:
                pass
        good = {"prompt_ctx": {"value": 0.5}}
        good.update({f: {"value": 0} for f in rt.FEATURES[1:]})
        lines = [json.dumps({"id": "a", "score": 0.2, "decision": "local", "features": good}),
                 json.dumps({"id": "b", "error": "too long"})]
        rows, failed = rt.parse_route_output(lines, "t")
        check(rows["a"]["x"]["prompt_ctx"] == 0.5 and failed == [("b", "too long")],
              "route output parse")
        for bad in ('{"id": "c", "features": {"nosuch": {"value": 1}}}', "[1]", "{",
                    '{"id": "d", "score": 0.1, "decision": "local", "features": '
                    '{"prompt_ctx": {"value": "x"}}}'):
            try:
                rt.parse_route_output([bad], "t")
                check(False, "bad route output accepted: %r" % bad)
            except rt.InputError:
                pass
    for f in fails:
        print("FAIL: %s" % f)
    print("self-test: %s" % ("%d failed" % len(fails) if fails else "all passed"))
    return 1 if fails else 0
