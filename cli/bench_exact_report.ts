/** `bench exact-report`: issue 13's table (DC, TMDC, PGD-AT under exact attacks) as Markdown. */
import { exactReport } from "../bench/exact_report.ts";
import { defineCommand } from "./command.ts";

export const benchExactReport = defineCommand({
  summary: "the adaptive-attack table: DC fixed/secret seed, chosen TMDC, PGD-AT baselines",
  options: {
    exact: { type: "string", arg: "A.json,B.json", required: true, help: "bench dc-exact reports" },
    recheck: {
      type: "string",
      arg: "A.json,…",
      help: "bench exact-recheck reports (n = 128 rows)",
    },
    "gpu-levels": {
      type: "string",
      arg: "A.json,…",
      help: "exact_autoattack.py reports of every budget level (their saturation curve)",
    },
    "tm-study": { type: "path", help: "bench tm-study's report (its chosen TMDC's test row)" },
    labels: {
      type: "string",
      arg: "ID=NAME,…",
      help: "names for adapter ids in the reports (KV ids are opaque)",
    },
    sanity: {
      type: "string",
      arg: "A.json,…",
      help: "bench dc-exact reports at an unbounded budget (must reach 0%)",
    },
    "old-adaptive": {
      type: "string",
      arg: "A.json,…",
      help: "bench table --mode adaptive reports (the old oracle) of the DC or a TMDC of the " +
        "exact rows, in their worst case",
    },
    "paper-state": {
      type: "path",
      default: "runs/paper-s0",
      help: "bench paper's state folder (per-image flags of the baselines)",
    },
    baselines: {
      type: "string",
      default: "resnet14-fmnist-pgdat,vit-p4-d64-l4-fmnist-pgdat,wrn10-2-fmnist-pgdat",
      help: "row-name prefixes of the baselines",
    },
    md: { type: "path", default: "docs/results/adaptive_table.md", help: "Markdown output" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (values, _, argv) =>
    exactReport({
      ...values,
      exact: values.exact.split(","),
      recheck: values.recheck?.split(","),
      "gpu-levels": values["gpu-levels"]?.split(","),
      baselines: values.baselines.split(","),
      labels: values.labels?.split(","),
      sanity: values.sanity?.split(","),
      "old-adaptive": values["old-adaptive"]?.split(","),
    }, argv),
});
