#!/usr/bin/env bash
# Rebuild the embedded default diffusion bundle from a finished training run and measure it.
# Every step prints or writes JSON into docs/results/ with the command that made it.
#   scripts/build_default_bundle.sh [runs/diffusion/final.pt] [dc_default.json]
set -euo pipefail
cd "$(dirname "$0")/.."
CKPT=${1:-runs/diffusion/final.pt}
DEFAULT=${2:-docs/results/dc_default.json}
OUT=models/fmnist-ddpm-unet32
export OMP_WAIT_POLICY=PASSIVE
(cd compiler && ../.venv/bin/python -m tmdc_compiler.build_bundle diffusion --checkpoint "../$CKPT" --out "../$OUT" \
  --name fmnist-ddpm-unet32 --batch-grad 32 --dc-default "../$DEFAULT")
cp runs/diffusion/train_log.jsonl docs/results/diffusion_train_log.jsonl
# Reference (PyTorch) and TypeScript engine on the same 1,024 seeded test images and schedule.
(cd compiler && ../.venv/bin/python -m tmdc_compiler.evaluate dc --bundle "../$OUT" --n 1024 --seed 0 --threads 2 --record \
  --json ../docs/results/dc_clean_reference_n1024.json)
scripts/deno task cli bench classify --n 1024 --seed 0 --bundle "$OUT" --errors --json docs/results/dc_clean_ts_n1024.json
(cd compiler && ../.venv/bin/python -m tmdc_compiler.evaluate parity ../docs/results/dc_clean_ts_n1024.json \
  ../docs/results/dc_clean_reference_n1024.json) | tee docs/results/dc_parity_n1024.json
