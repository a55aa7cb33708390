/** `bench diffpure-choose`: DiffPure's t* and steps on validation images. */
import { chooseDiffPure } from "../bench/diffpure_choose.ts";
import { defineCommand } from "./command.ts";

export const benchDiffpureChoose = defineCommand({
  summary: "choose DiffPure's depth t* and DDIM steps on validation (clean + white-box PGD/EOT)",
  options: {
    n: { type: "int", min: 1, max: 5000, default: 128, help: "validation images" },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "subset seed" },
    "t-stars": { type: "ints", default: [50, 100, 200], help: "candidate depths" },
    steps: { type: "ints", default: [5], help: "candidate DDIM step counts" },
    eps: { type: "number", min: 0, default: 0.1, help: "Linf budget of the attack" },
    "pgd-steps": { type: "int", min: 1, max: 1000, default: 10, help: "PGD iterations" },
    eot: { type: "int", min: 1, max: 64, default: 2, help: "gradient draws per iteration" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  async run(values, _, argv) {
    await chooseDiffPure({
      n: values.n,
      seed: values.seed,
      tStars: [...values["t-stars"]],
      steps: [...values.steps],
      eps: values.eps,
      pgdSteps: values["pgd-steps"],
      eot: values.eot,
      json: values.json,
    }, argv);
  },
});
