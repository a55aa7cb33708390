/** `bench paper-report`: docs/results/paper_tables.md and the ε plot from `bench paper`'s JSON. */
import { paperReport } from "../bench/paper_report.ts";
import { defineCommand } from "./command.ts";

export const benchPaperReport = defineCommand({
  summary: "write paper_tables.md and the robust-accuracy-vs-ε plot from `bench paper` results",
  options: {
    paper: { type: "path", default: "docs/results/paper_cells.json", help: "bench paper's JSON" },
    state: { type: "path", default: "runs/paper-s0/cells.json", help: "its per-image state" },
    "dc-transfer": { type: "path", arg: "JSON", help: "bench table transfer record of the DC" },
    "dc-adaptive": { type: "path", arg: "JSON", help: "bench table adaptive record of the DC" },
    "tmdc-transfer": { type: "path", arg: "JSON", help: "the same for the TMDC" },
    "tmdc-adaptive": { type: "path", arg: "JSON", help: "the same for the TMDC" },
    md: { type: "path", default: "docs/results/paper_tables.md", help: "markdown out" },
    svg: { type: "path", default: "docs/results/paper_eps_curve.svg", help: "plot (SVG)" },
    png: { type: "path", default: "docs/results/paper_eps_curve.png", help: "plot (PNG)" },
    record: {
      type: "path",
      arg: "DIR",
      help: "also write each classifier's figures into its manifest under DIR (e.g. models)",
    },
  },
  async run(v) {
    const r = await paperReport({
      paper: v.paper,
      state: v.state,
      dcTransfer: v["dc-transfer"],
      dcAdaptive: v["dc-adaptive"],
      tmdcTransfer: v["tmdc-transfer"],
      tmdcAdaptive: v["tmdc-adaptive"],
      md: v.md,
      svg: v.svg,
      png: v.png,
      record: v.record,
    });
    console.log(JSON.stringify(r, null, 1));
  },
});
