/** `bench table`: the Fashion-MNIST robustness table, one mode (transfer or adaptive) per run. */
import { DEFAULT_CELLS, robustnessTable } from "../bench/robustness_table.ts";
import { defineCommand } from "./command.ts";
import { DIFFUSION_BUNDLE, SURROGATE_BUNDLE, THREADS } from "./shared_options.ts";

export const benchTable = defineCommand({
  summary: "the robustness table: a grid of attack cells scored on the DC, checkpointed per cell",
  description: "Cells are `attack[:steps|version]@linf|l2:eps`; state and adversarial images are " +
    "kept under runs/table-…/\n(or --checkpoint DIR), so a stopped run resumes.\n" +
    `Default cells, transfer: ${DEFAULT_CELLS.transfer}\n` +
    `Default cells, adaptive: ${DEFAULT_CELLS.adaptive}`,
  options: {
    mode: {
      type: "enum",
      values: ["transfer", "adaptive"],
      default: "transfer",
      help: "transfer: made on the surrogate; adaptive: made through the DC itself",
    },
    n: {
      type: "int",
      min: 1,
      max: 10000,
      help: "images of the seeded subset (default 512 transfer, 128 adaptive)",
    },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "subset seed" },
    cells: { type: "string", arg: "LIST", help: "comma-separated cells (default: the grid)" },
    "attack-timesteps": {
      type: "int",
      min: 1,
      max: 1000,
      default: 4,
      help: "timesteps of the DC's gradient estimate (adaptive)",
    },
    "logit-scale": {
      type: "number",
      above: 0,
      default: 100,
      help: "logits = −scale × mean error (adaptive)",
    },
    bundle: DIFFUSION_BUNDLE,
    surrogate: SURROGATE_BUNDLE,
    adapter: { type: "string", arg: "ID", help: "a TMDC adapter (LoRA) from the service's KV" },
    settings: { type: "settings", help: "overrides of the bundle's default DC settings" },
    threads: THREADS,
    "sanity-n": { type: "int", min: 1, default: 16, help: "images the sanity checks use" },
    rescore: {
      type: "int",
      min: 0,
      max: 100,
      default: 0,
      help: "re-score each cell's first sanity-n points with R fresh noise draws",
    },
    "rescore-cells": { type: "string", arg: "K,K,…", help: "only re-score these cells" },
    checkpoint: { type: "path", arg: "DIR", help: "state folder (default runs/table-…)" },
    "reuse-adv": {
      type: "path",
      arg: "DIR",
      help: "take transferred examples from another run's state folder (same n, seed)",
    },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (values, _, argv) => robustnessTable(values, argv),
});
