"""Print what must not change between behaviour-check outputs (scripts/behaviour_check/run.sh)."""

import hashlib
import json
import sys


def digest(x) -> str:
    return hashlib.sha256(json.dumps(x).encode()).hexdigest()


def summary(d: str) -> dict:
    out = {}
    for mode in ["transfer", "adaptive"]:
        with open(f"{d}/{mode}.json") as f:
            r = json.load(f)
        out[mode] = {
            "clean_dc_flags_sha256": digest(r["clean"]["dc_correct_flags"]),
            "cells": {
                c["key"]: {
                    "robust_flags_sha256": digest([c["dc_robust_flags"], c["source_robust_flags"]]),
                    "dc_robust_accuracy": c["dc_robust_accuracy"],
                }
                for c in r["cells"]
            },
            "unbounded_flags_sha256": digest(r["unbounded"]["dc_robust_flags"]),
        }
    with open(f"{d}/hashes.txt") as f:
        pairs = [line.split() for line in f if line.strip()]
    # the file's folder and name (ck-transfer/fgsm_linf_0.05.f32), whatever the absolute path
    out["adversarial_sets_sha256"] = {"/".join(p.split("/")[-2:]): h for h, p in pairs}
    with open(f"{d}/service.json") as f:
        out["service"] = json.load(f)
    return out


if __name__ == "__main__":
    runs = {d: summary(d) for d in sys.argv[1:]}
    first = next(iter(runs.values()))
    print(json.dumps({"runs": runs, "identical": all(r == first for r in runs.values())}, indent=1))
