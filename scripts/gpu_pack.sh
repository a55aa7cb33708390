#!/usr/bin/env bash
# Packs what scripts/gpu_exact.sh needs on a device lease into the ignored .gpu/ folder, small
# enough to carry (the working tree plus carried paths must stay under 64 MiB):
#
#   scripts/gpu_pack.sh AUTOATTACK_CHECKOUT TMDC_ADAPTER TMDC_BUNDLE
#
# .gpu/aa/autoattack   fra31/auto-attack's package (a checkout you provide; never committed)
# .gpu/fmnist          the Fashion-MNIST test split (point TMDC_DATA_DIR at it on the device)
# .gpu/tmdc-bundle     TMDC_BUNDLE's manifest and PyTorch weights only (exact_autoattack reads no
#                      ONNX graph; they are most of a bundle's size)
# .gpu/<run>/<step>    the adapter, under the last two parts of its path (reports name it so)
# Then, on the device: TMDC_DATA_DIR=$PWD/.gpu/fmnist scripts/gpu_exact.sh .gpu/aa $OUT/x SECONDS \
#   .gpu/<run>/<step> .gpu/tmdc-bundle   (carry: [".gpu"])
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: scripts/gpu_pack.sh AUTOATTACK_CHECKOUT TMDC_ADAPTER TMDC_BUNDLE" >&2
  exit 2
fi
root=$(realpath "$(dirname "$0")/..")
py=${PYTHON:-$root/.venv/bin/python}
g=$root/.gpu
# a fresh folder each time: whatever else lies in .gpu would be carried too
tmp=$(mktemp -d)
cp -r "$1/autoattack" "$tmp/"
rm -rf "$g"
mkdir -p "$g/aa" "$g/fmnist" "$g/tmdc-bundle"
mv "$tmp/autoattack" "$g/aa/"
rmdir "$tmp"
data=$(cd "$root/compiler" && "$py" -c "from tmdc_compiler.data import data_dir; print(data_dir())")
cp "$data"/t10k-*-idx?-ubyte* "$g/fmnist/"
run=$(basename "$(dirname "$2")")
mkdir -p "$g/$run"
cp "$2" "$g/$run/"
cp "$3/torch_state.pt" "$g/tmdc-bundle/"
"$py" - "$3/manifest.json" "$g/tmdc-bundle/manifest.json" <<'PY'
import json, sys

m = json.load(open(sys.argv[1]))
m["files"] = {"torch_state.pt": m["files"]["torch_state.pt"]}
for g in m["graphs"].values():  # the loader resolves graph files; point them at the weights
    g["file"] = "torch_state.pt"
    g.pop("data_file", None)
json.dump(m, open(sys.argv[2], "w"))
PY
du -sh "$g"
