/** `bench tm-curve`: every checkpoint of a fine-tune scored on test images under a stored attack. */
import { join } from "node:path";
import { config } from "../config.ts";
import { tmCurve } from "../bench/tm_report.ts";
import { defineCommand } from "./command.ts";
import { DIFFUSION_BUNDLE, THREADS } from "./shared_options.ts";

export const benchTmCurve = defineCommand({
  summary: "TMDC checkpoint curve: each checkpoint of a fine-tune on test images (JSON + SVG)",
  description: "With --test-from, no new classifications: test points come from `bench table` " +
    "reports.",
  options: {
    finetune: { type: "string", arg: "JSON", required: true, help: "a `finetune` report" },
    adv: {
      type: "path",
      arg: "DIR",
      default: join(config.root, "runs", "table-transfer-n512-s0"),
      help: "a `bench table` state folder holding the cell's adversarial images",
    },
    cell: { type: "string", default: "autoattack:plus@linf:0.05", help: "the table cell" },
    n: { type: "int", min: 1, max: 10000, default: 64, help: "test images" },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "subset seed" },
    bundle: DIFFUSION_BUNDLE,
    threads: THREADS,
    json: { type: "path", required: true, help: "report file (- = stdout)" },
    svg: { type: "path", help: "plot file" },
    "test-from": {
      type: "string",
      arg: "A.json,B.json",
      help: "`bench table` reports to take the test points from",
    },
  },
  run: (values, _, argv) => tmCurve(values, argv),
});
