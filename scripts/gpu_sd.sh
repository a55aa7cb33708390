#!/usr/bin/env bash
# Issue 15's GPU measurements, for a lent GPU machine (device tool): UNet calls/s of the tiny
# SD bundle and of a random-weight model with SD 2 base's real UNet at 64×64 latents, on ONNX
# Runtime's CUDA provider (float16 and float32; a CPU fallback is reported, not hidden) and in
# PyTorch on CUDA (the reference point). Writes JSON under $OUT (or docs/results/sd_gpu/).
# Needs the compiler's Python packages (torch, diffusers, transformers, onnx, onnxruntime[-gpu]).
# The device machine has torch but cannot download: prepare wheels here and carry them, e.g.
#   .venv/bin/pip download -d .gpu/wheels diffusers==0.42.1 transformers==5.24.0 onnx==1.23.2 \
#       onnxscript==0.7.2 onnx-ir==1.1.0 onnxruntime-gpu   (then run with carry [".gpu"])
set -uo pipefail
cd "$(dirname "$0")/../compiler"
PY=${PY:-python3}
if ! $PY -c "import diffusers, transformers, onnxruntime" 2>/dev/null && [ -d ../.gpu/wheels ]; then
  $PY -m pip install -q --no-index --find-links ../.gpu/wheels diffusers transformers onnx onnxscript onnx-ir onnxruntime-gpu \
    || $PY -m pip install -q --no-index --find-links ../.gpu/wheels diffusers transformers onnx onnxscript onnx-ir onnxruntime
fi
OUT=${OUT:-../docs/results/sd_gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/device.csv" 2>&1
$PY -c "import onnxruntime as o, torch; print(o.__version__, o.get_available_providers(), torch.__version__, torch.cuda.is_available())" | tee "$OUT/versions.txt"
for shape in tiny sd2; do
  for dtype in float16 float32; do
    timeout 900 $PY -m tmdc_compiler.sd_throughput --shape $shape --dtype $dtype --providers cuda,cpu \
      --rows 8,32 --seconds 20 --threads 8 --json "$OUT/ort_${shape}_${dtype}.json" > "$OUT/ort_${shape}_${dtype}.log" 2>&1
    timeout 600 $PY -m tmdc_compiler.sd_throughput --engine torch --shape $shape --dtype $dtype \
      --rows 8,32 --seconds 20 --json "$OUT/torch_${shape}_${dtype}.json" > "$OUT/torch_${shape}_${dtype}.log" 2>&1
  done
done
ls -la "$OUT"
