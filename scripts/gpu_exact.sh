#!/usr/bin/env bash
# Issue 13's large exact white-box cells, meant for a GPU (an H100 here, CPU works too, slowly):
# fra31 AutoAttack `standard` through the DC's own estimator, every returned point checked on the
# real DC (compiler/tmdc_compiler/exact_autoattack.py), N = 128 seeded test images.
#
#   scripts/gpu_exact.sh AUTOATTACK_DIR OUT_DIR SECONDS [TMDC_ADAPTER [TMDC_BUNDLE]]
#
# Order = priority, since a lease is short: the gradient attacks (APGD-CE, APGD-T) at ×1 on the
# three budgets for the DC, then for the TMDC adapter (on TMDC_BUNDLE, the bundle it was trained on;
# the chosen convolution-LoRA adapter needs runs/bundles/fmnist-ddpm-unet32-lora4-convs); ×2 at
# Linf 0.1 for both (the saturation rule); ×2 at L2 1.5 with APGD-CE and APGD-T (the last
# lease's ×2 there ran APGD-CE only); then the rest of AutoAttack
# standard (FAB-T, Square) after the DC's ×1 at Linf 0.1. No attack starts after SECONDS; every
# finished attack is in its report. Bookkeeping follows the real DC's decision (--decide real,
# exact_autoattack's default). N, ITERS, PAIRS and DEVICE override the defaults.
set -uo pipefail
aa=$(realpath "$1")
out=$(realpath -m "$2")
end=$(($(date +%s) + $3))
adapter=${4:+$(realpath "$4")}
# an adapter only fits the bundle it was trained on: name it, rather than lose lease time to a
# size mismatch found after the model loaded
if [ -n "$adapter" ] && [ -z "${5:-}" ]; then
  echo "gpu_exact.sh: TMDC_ADAPTER needs its TMDC_BUNDLE (5th argument)" >&2
  exit 2
fi
tmdc_bundle=${5:+$(realpath "$5")}
cd "$(dirname "$0")/../compiler" || exit 1
py=${PYTHON:-python3}
run() {
  PYTHONUNBUFFERED=1 "$py" -m tmdc_compiler.exact_autoattack --autoattack "$aa" \
    --n "${N:-128}" --seed 0 --iters "${ITERS:-100}" \
    --pairs "${PAIRS:-8}" ${DEVICE:+--device "$DEVICE"} --deadline $((end - $(date +%s))) "$@"
}
dc() { run --bundle ../models/fmnist-ddpm-unet32 "$@"; }
tm() { [ -z "$adapter" ] || run --bundle "$tmdc_bundle" --adapter "$adapter" "$@"; }
dc --cells linf:0.1,linf:0.05,l2:1.5 --levels 1 --attacks apgd-ce,apgd-t --save-adv --out "$out/dc-x1"
tm --cells linf:0.1,linf:0.05,l2:1.5 --levels 1 --attacks apgd-ce,apgd-t --save-adv --out "$out/tmdc-x1"
dc --cells linf:0.1 --levels 2 --attacks apgd-ce,apgd-t --out "$out/dc-x2"
tm --cells linf:0.1 --levels 2 --attacks apgd-ce,apgd-t --out "$out/tmdc-x2"
dc --cells l2:1.5 --levels 2 --attacks apgd-ce,apgd-t --out "$out/dc-x2-l2"
dc --after "$out/dc-x1/report.json" --cells linf:0.1 --levels 1 --attacks fab-t,square \
  --out "$out/dc-x1-rest"
