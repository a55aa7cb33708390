#!/usr/bin/env bash
# Issue 13's large exact white-box cells, meant for a GPU (an H100 here, CPU works too, slowly):
# fra31 AutoAttack `standard` through the DC's own estimator, every returned point checked on the
# real DC (compiler/tmdc_compiler/exact_autoattack.py), N = 128 seeded test images.
#
#   scripts/gpu_exact.sh AUTOATTACK_DIR OUT_DIR SECONDS TMDC_ADAPTER TMDC_BUNDLE
#
# Only what docs/results/exact_autoattack_h100/decide-real/ still lacks runs, in order of need,
# since a lease is short: APGD-T with its target loop on the real DC's books (apgd-t-real) on the
# Linf 0.1 images the DC's and the TMDC's ×1 left robust; the TMDC adapter (on TMDC_BUNDLE, the
# bundle it was trained on; the chosen convolution LoRA needs
# runs/bundles/fmnist-ddpm-unet32-lora4-convs) and the DC at ×2 Linf 0.1 (the saturation rule);
# both at ×1 and ×2 on Linf 0.05 and L2 1.5; then the rest of AutoAttack standard (FAB-T, Square)
# on the DC's Linf 0.1 images still robust. No attack starts after SECONDS; every finished attack
# is in its report.
#
# One stage at a time: six parallel processes on one H100 (lease of 2026-11-28) ran each stage
# 3.5-4x slower than one alone (the DC's APGD-CE at Linf 0.1: 208 s vs 59 s; nvidia-smi at 100%)
# and half of them died of CUDA out-of-memory (~20 GB each at --max-rows 8192).
# Everything lands in OUT_DIR.tgz as well, since a device lease returns only a few files (make
# OUT_DIR a folder inside the lease's $OUT, e.g. $OUT/x, so the archive comes back too).
# Bookkeeping follows the real DC's decision (--decide real, exact_autoattack's default).
# N, ITERS, PAIRS and DEVICE override the defaults.
set -uo pipefail
if [ $# -ne 5 ]; then
  echo "usage: scripts/gpu_exact.sh AUTOATTACK_DIR OUT_DIR SECONDS TMDC_ADAPTER TMDC_BUNDLE" >&2
  exit 2
fi
root=$(realpath "$(dirname "$0")/..")
aa=$(realpath "$1")
out=$(realpath -m "$2")
end=$(($(date +%s) + $3))
adapter=$(realpath "$4")
tmdc_bundle=$(realpath "$5")
done_dir=$root/docs/results/exact_autoattack_h100/decide-real
cd "$root/compiler" || exit 1
py=${PYTHON:-python3}
mkdir -p "$out"
# run STAGE ARGS…: one exact_autoattack process, its report in OUT_DIR/STAGE, its log beside it
# (past the deadline a stage is skipped, not started: loading the model and the clean verdicts
# alone cost a lease ~15 s); after each stage OUT_DIR.tgz is rewritten, so a command cut off by the
# lease's limit still returns every finished stage
run() {
  local stage=$1 rc
  shift
  if [ "$(date +%s)" -ge "$end" ]; then
    echo "$stage: skipped (deadline)"
    return 0
  fi
  PYTHONUNBUFFERED=1 "$py" -m tmdc_compiler.exact_autoattack --autoattack "$aa" \
    --n "${N:-128}" --seed 0 --iters "${ITERS:-100}" --pairs "${PAIRS:-8}" \
    ${DEVICE:+--device "$DEVICE"} --deadline $((end - $(date +%s))) --out "$out/$stage" "$@" \
    2>"$out/$stage.log"
  rc=$?
  echo "$stage: exit $rc"
  tail -n 3 "$out/$stage.log"
  tar czf "$out.tgz.part" -C "$(dirname "$out")" "$(basename "$out")" && mv "$out.tgz.part" "$out.tgz"
}
dc() { run "$1" --bundle ../models/fmnist-ddpm-unet32 "${@:2}"; }
tm() { run "$1" --bundle "$tmdc_bundle" --adapter "$adapter" "${@:2}"; }
g=(--attacks apgd-ce,apgd-t-real)
# the ×1 runs of the lease of 2026-11-28 (APGD-CE, fra31's APGD-T) go on with the target loop on
# the real DC's books (apgd-t-real) on the images they left robust
dc dc-x1-treal --after "$done_dir/dc-x1-linf0.1.json" --cells linf:0.1 --levels 1 --attacks apgd-t-real
tm tmdc-x1-treal --after "$done_dir/tmdc-convs-x1-linf0.1.json" --cells linf:0.1 --levels 1 --attacks apgd-t-real
tm tmdc-x2 --cells linf:0.1 --levels 2 "${g[@]}"
dc dc-x2 --cells linf:0.1 --levels 2 "${g[@]}"
tm tmdc-x1-b --cells linf:0.05,l2:1.5 --levels 1 "${g[@]}" --save-adv
dc dc-x1-b --cells linf:0.05,l2:1.5 --levels 1 "${g[@]}" --save-adv
tm tmdc-x2-b --cells linf:0.05,l2:1.5 --levels 2 "${g[@]}"
dc dc-x2-b --cells linf:0.05,l2:1.5 --levels 2 "${g[@]}"
dc dc-x1-rest --after "$out/dc-x1-treal/report.json" --cells linf:0.1 --levels 1 --attacks fab-t,square
