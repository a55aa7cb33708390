#!/usr/bin/env bash
# Behaviour check for a restructuring (issue 10): run the same small transfer cell, adaptive cell,
# service evaluation and classify job on a checkout, and write what must not change.
#   usage: scripts/behaviour_check/run.sh CHECKOUT OUTDIR
# Run it on the old and the new commit (each a checkout with node_modules), then
#   python3 scripts/behaviour_check/compare.py OLD_OUTDIR NEW_OUTDIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
deno="$here/../deno"
repo=$(cd "$1" && pwd); out=$(mkdir -p "$2" && cd "$2" && pwd)
cd "$repo"
"$deno" task cli bench table --mode transfer --n 32 --seed 0 --cells fgsm@linf:0.05 --sanity-n 8 \
  --checkpoint "$out/ck-transfer" --json "$out/transfer.json"
"$deno" task cli bench table --mode adaptive --n 16 --seed 0 --cells pgd:10@linf:0.1 --sanity-n 4 \
  --checkpoint "$out/ck-adaptive" --json "$out/adaptive.json"
"$deno" run -A --unstable-kv --config "$repo/deno.json" "$here/service_run.ts" "$repo" "$out/service.json"
(cd "$out" && sha256sum ck-*/*.f32 > hashes.txt)
