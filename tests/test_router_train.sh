#!/bin/sh
# The router trainer's maths (scripts/router_train.py --self-test: ROC-AUC
# on known cases, the logistic fit recovering known weights, the weights
# file, the split) and the shipped labelled set (--check-data: every line
# valid, ids unique, the request shapes hearth route takes). Exit 77 (skip)
# when python3 is missing.
set -u
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 missing"; exit 77
fi
python3 "$here/../scripts/router_train.py" --self-test || exit 1
python3 "$here/../scripts/router_train.py" --check-data \
    --data "$here/../data/router/prompts.jsonl" || exit 1
