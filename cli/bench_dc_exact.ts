/** `bench dc-exact`: the exact white-box (or secret-seed EOT) attack on the DC, budget levels. */
import { dcExactAttack, DEFAULT_CHUNK } from "../bench/dc_exact.ts";
import { defineCommand } from "./command.ts";
import { DIFFUSION_BUNDLE, SURROGATE_BUNDLE, THREADS } from "./shared_options.ts";

export const benchDcExact = defineCommand({
  summary: "exact white-box attack on the DC through its own timesteps and noise; budget curve",
  description:
    "Attacks the classifier's own estimate (a fresh subset of its grid pairs per step),\n" +
    "checks every candidate on the real classifier, and repeats at each budget multiplier\n" +
    "(--levels 1,2: ×1 and ×2 iterations). --noise fresh attacks the secret-seed mode with\n" +
    "EOT and scores with a draw the attacker never saw. Resumes from runs/dc-exact-…/;\n" +
    "a larger --n later attacks only the images past the chunks already finished.",
  options: {
    n: { type: "int", min: 1, max: 10000, default: 32, help: "images of the seeded test subset" },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "subset seed" },
    split: {
      type: "enum",
      values: ["test", "validation"],
      default: "test",
      help: "test (reported numbers) or validation (choosing settings)",
    },
    norm: { type: "enum", values: ["linf", "l2"], default: "linf", help: "threat model" },
    eps: { type: "number", min: 0, default: 0.1, help: "budget in the norm" },
    noise: {
      type: "enum",
      values: ["fixed", "fresh"],
      default: "fixed",
      help: "fixed: the DC's own seed (deterministic); fresh: secret-seed mode with EOT",
    },
    target: {
      type: "enum",
      values: ["fixed", "secret"],
      help: "the deployment attacked (default: fixed for --noise fixed, secret for fresh)",
    },
    attacks: {
      type: "string",
      arg: "LIST",
      default: "apgd-ce,apgd-dlr",
      help: "comma-separated: apgd-ce, apgd-dlr",
    },
    iters: { type: "int", min: 1, max: 10000, default: 50, help: "APGD iterations at ×1" },
    pairs: { type: "int", min: 1, max: 1000, default: 4, help: "grid pairs per gradient step" },
    eot: { type: "int", min: 1, max: 100, default: 1, help: "gradient draws per step (EOT)" },
    levels: { type: "ints", default: [1, 2], help: "budget multipliers of the iterations" },
    "random-restarts": { type: "int", min: 0, max: 20, default: 0, help: "random starts" },
    "no-transfer-starts": {
      type: "boolean",
      help: "random starts only (the unbounded sanity check: no start already misclassified)",
    },
    "logit-scale": { type: "number", above: 0, default: 100, help: "logits = −scale × error" },
    bundle: DIFFUSION_BUNDLE,
    surrogate: SURROGATE_BUNDLE,
    adapter: { type: "string", arg: "ID", help: "a TMDC adapter (LoRA) from the service's KV" },
    settings: { type: "settings", help: "overrides of the bundle's default DC settings" },
    threads: THREADS,
    checkpoint: { type: "path", arg: "DIR", help: "state folder (default runs/dc-exact-…)" },
    chunk: {
      type: "int",
      min: 1,
      max: 10000,
      default: DEFAULT_CHUNK,
      help: "images per batch and state file (a later, larger --n reuses finished chunks)",
    },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (values, _, argv) =>
    dcExactAttack({
      ...values,
      norm: values.norm as "linf" | "l2",
      noise: values.noise as "fixed" | "fresh",
      split: values.split as "test" | "validation",
      target: values.target as "fixed" | "secret" | undefined,
      attacks: values.attacks.split(",").map((a) => a.trim()),
      levels: [...values.levels],
    }, argv),
});
