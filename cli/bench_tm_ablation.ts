/** `bench tm-ablation`: DC vs TMDC from two `bench table` runs on the same images and attacks. */
import { tmAblation } from "../bench/tm_report.ts";
import { defineCommand } from "./command.ts";

export const benchTmAblation = defineCommand({
  summary: "DC vs TMDC per cell from two `bench table` reports: intervals, folds, sign test",
  options: {
    base: { type: "path", arg: "TABLE.json", required: true, help: "the base DC's table" },
    tmdc: { type: "path", arg: "TABLE.json", required: true, help: "the TMDC adapter's table" },
    folds: { type: "int", min: 2, max: 100, default: 5, help: "disjoint folds for mean ± sd" },
    json: { type: "path", required: true, help: "report file (a summary goes to stdout)" },
  },
  run: (values, _, argv) => tmAblation(values, argv),
});
