/** `finetune`: a Truth-Maximization run in-process; checkpoints go to the service's KV. */
import { ATTACKS } from "../lib/attacks/registry.ts";
import { PAPER_TM } from "../lib/truth_max.ts";
import { finetuneCommand } from "../bench/finetune.ts";
import { defineCommand } from "./command.ts";
import { DIFFUSION_BUNDLE, SURROGATE_BUNDLE, THREADS } from "./shared_options.ts";

const SEED = { type: "int", min: 0, max: 2 ** 32 - 1, default: 0 } as const;

export const finetune = defineCommand({
  summary: "Truth-Maximization fine-tuning in-process; checkpoints stored as adapters in the KV",
  description: "Adapters land in the service's KV (TMDC_KV_PATH), so their ids work in " +
    "`bench classify --adapter`,\n`evaluate --adapter` and the HTTP API; `--resume RUN` " +
    "continues a stopped run from its last checkpoint.",
  options: {
    steps: { type: "int", min: 1, default: PAPER_TM.steps, help: "optimizer steps" },
    seed: { ...SEED, help: "run seed (batches, attack seeds, LoRA init)" },
    lr: { type: "number", above: 0, default: PAPER_TM.lr, help: "AdamW learning rate" },
    "weight-decay": {
      type: "number",
      min: 0,
      default: PAPER_TM.weightDecay,
      help: "AdamW weight decay",
    },
    warmup: { type: "int", min: 0, default: PAPER_TM.warmupSteps, help: "warm-up steps" },
    batch: { type: "int", min: 1, max: 4096, default: PAPER_TM.batchSize, help: "batch size" },
    attack: {
      type: "enum",
      values: [...Object.keys(ATTACKS), "none"],
      default: "autoattack",
      arg: "NAME|none",
      help: "online attack on the surrogate per batch (none: clean images, an ablation)",
    },
    version: {
      type: "enum",
      values: ["standard", "plus", "rand"],
      default: "plus",
      help: "AutoAttack version",
    },
    norm: { type: "enum", values: ["linf", "l2"], default: "linf", help: "threat model" },
    eps: { type: "number", min: 0, default: 0.05, help: "perturbation budget" },
    "attack-steps": { type: "int", min: 1, help: "attack iterations (default: the attack's)" },
    checkpoints: {
      type: "ints",
      min: 1,
      arg: "K,K,…",
      help: "steps to checkpoint at (default: the paper's schedule; the last step always)",
    },
    "val-n": { type: "int", min: 1, max: 5000, default: 64, help: "validation images" },
    pool: {
      type: "int",
      min: 0,
      default: 0,
      help: "0: attack every batch online; P: draw batches from P images attacked once",
    },
    "val-seed": { ...SEED, help: "validation subset seed" },
    data: {
      type: "enum",
      values: ["fashion-mnist", "cifar10"],
      default: "fashion-mnist",
      help: "training/validation images (cifar10: TMDC_CIFAR10_DIR's training batches)",
    },
    bundle: DIFFUSION_BUNDLE,
    surrogate: SURROGATE_BUNDLE,
    threads: THREADS,
    resume: { type: "string", arg: "RUN", help: "continue run RUN from its last checkpoint" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (values, _, argv) => finetuneCommand(values, argv),
});
