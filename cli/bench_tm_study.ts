/** `bench tm-study`: Truth Maximization configurations, chosen and tested under the exact attack. */
import { tmStudy } from "../bench/tm_study.ts";
import { defineCommand } from "./command.ts";
import { THREADS } from "./shared_options.ts";

export const benchTmStudy = defineCommand({
  summary: "Truth-Maximization study: train each configuration, choose on validation, test vs DC",
  description: "The study file lists the configurations (bundle = LoRA rank, lr, steps, ε, " +
    "source transfer|adaptive),\nthe checkpoints, the sets and the exact attack; see " +
    "docs/results/tm_study_config.json. State under runs/tm-study/ (resumes).",
  options: {
    study: { type: "path", arg: "FILE", required: true, help: "the study file (JSON)" },
    threads: THREADS,
    state: { type: "path", arg: "DIR", help: "state folder (default runs/tm-study)" },
    "test-config": {
      type: "string",
      arg: "NAME",
      help: "only the test attack on this configuration's best checkpoint (a parallel process)",
    },
    "test-choose": {
      type: "string",
      arg: "NAME",
      help: "only the choosing attack on test for this configuration, or 'dc' (a parallel process)",
    },
    md: { type: "path", help: "the study table as Markdown (every configuration)" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (values, _, argv) => tmStudy(values, argv),
});
