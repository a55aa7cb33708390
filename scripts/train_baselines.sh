#!/usr/bin/env bash
# Train the baseline classifiers (issue 12): two queues of one thread each, resumable (rerun this
# script after a stop: each run continues from its last epoch checkpoint under runs/baselines/).
# ResNet-14 clean is the existing surrogate (models/resnet14-fmnist). PGD-AT: Linf ε 0.1, PGD-5.
set -euo pipefail
cd "$(dirname "$0")/../compiler"
PY=../.venv/bin/python
R=../runs/baselines
train() { local name=$1; shift; [ -f "$R/$name/final.pt" ] && return 0
  mkdir -p "$R/$name"; $PY -m tmdc_compiler.train_classifier --out "$R/$name" --threads 1 "$@" >> "$R/$name/log.jsonl" 2>&1; }
VIT=(--arch vit --patch 4 --dim 64 --depth 4 --heads 4 --mlp 128 --lr 0.002 --batch 128)
WRN=(--arch wrn --depth 10 --widen 2 --lr 0.1 --batch 128)
RES=(--arch resnet --depth 14 --width 16 --lr 0.1 --batch 128)
AT=(--adv-eps 0.1 --adv-steps 5)
(
  train vit-clean "${VIT[@]}" --epochs 10
  train resnet14-pgdat "${RES[@]}" "${AT[@]}" --epochs 4
  train vit-pgdat "${VIT[@]}" "${AT[@]}" --epochs 3
) &
(
  train wrn-clean "${WRN[@]}" --epochs 8
  train wrn-pgdat "${WRN[@]}" "${AT[@]}" --epochs 3
) &
wait
