#!/usr/bin/env bash
cd /work/main
while [ ! -f runs/diffusion/final.pt ]; do sleep 5; done
sleep 5
cd compiler
S='"stages":[{"nSamples":20,"keep":3},{"nSamples":100,"keep":1}],"gridSize":100'
export TMDC_TUNE_CANDIDATES="[{$S,\"tRange\":[0,1000],\"error\":\"l2\"},{$S,\"tRange\":[0,1000],\"error\":\"l1\"},{$S,\"tRange\":[0,600],\"error\":\"l2\"},{$S,\"tRange\":[0,600],\"error\":\"l1\"},{$S,\"tRange\":[50,500],\"error\":\"l2\"}]"
OMP_WAIT_POLICY=PASSIVE ../.venv/bin/python -m tmdc_compiler.evaluate tune --bundle ../runs/diffusion/final.pt --n 128 --seed 1 --threads 2 > ../docs/results/dc_tuning_validation.json 2> ../runs/tune_final.log
