#!/usr/bin/env bash
# Issue 15's GPU measurements, for a lent GPU machine (device tool): UNet calls/s of the tiny
# SD bundle and of a random-weight model with SD 2 base's real UNet at 64×64 latents, on ONNX
# Runtime's CUDA provider (float16 and float32; a CPU fallback is reported, not hidden) and in
# PyTorch on CUDA (the reference point). Writes JSON under $OUT (or docs/results/sd_gpu/).
# Needs the compiler's Python packages (torch, diffusers, transformers, onnx, onnxruntime[-gpu]).
set -uo pipefail
cd "$(dirname "$0")/../compiler"
PY=${PY:-python3}
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
