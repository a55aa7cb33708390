/** `bench paper`: the paper's Tables 1 and 2 with every comparison system (resumable cells). */
import { paperTables } from "../bench/paper_tables.ts";
import { defineCommand } from "./command.ts";
import { usageError } from "../bench/common.ts";

const BLOCKS = ["transfer", "whitebox", "curve", "sanity"] as const;

export const benchPaper = defineCommand({
  summary: "Tables 1 and 2: baselines, DiffPure and the DC under transfer and white-box attacks",
  description: "Rows: every classifier bundle in models/, DiffPure (--t-star, --steps) with the " +
    "surrogate, the DC on its default. Each cell is checkpointed under --state; rerun to resume. " +
    "`bench paper-report` turns the JSON into docs/results/paper_tables.md and the ε plot.",
  options: {
    state: { type: "path", default: "runs/paper-s0", arg: "DIR", help: "checkpoint folder" },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "test subset seed" },
    "transfer-n": { type: "int", min: 1, max: 10000, default: 512, help: "transfer block images" },
    "whitebox-n": { type: "int", min: 1, max: 10000, default: 128, help: "white-box block images" },
    "diffpure-n": {
      type: "int",
      min: 1,
      max: 10000,
      default: 64,
      help: "DiffPure adaptive images",
    },
    choose: {
      type: "path",
      default: "docs/results/diffpure_choose_validation_n128.json",
      help: "bench diffpure-choose's report: DiffPure's t* and steps chosen on validation",
    },
    "t-star": { type: "int", min: 1, max: 999, help: "override the chosen DiffPure depth" },
    steps: { type: "int", min: 1, max: 100, help: "override the chosen DDIM steps" },
    eot: { type: "int", min: 1, max: 64, default: 4, help: "DiffPure gradient draws per step" },
    rows: { type: "string", arg: "A,B", help: "only rows whose names start with these" },
    blocks: {
      type: "string",
      default: "transfer,whitebox,curve,sanity",
      arg: "LIST",
      help: "transfer, whitebox, curve, sanity",
    },
    threads: { type: "int", min: 0, max: 256, default: 2, help: "onnxruntime threads" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  async run(values, _, argv) {
    const blocks = values.blocks.split(",").map((b) => b.trim());
    const bad = blocks.filter((b) => !(BLOCKS as readonly string[]).includes(b));
    if (bad.length) usageError(`unknown block ${bad.join(", ")}; one of ${BLOCKS.join(", ")}`);
    // DiffPure as chosen on validation, unless overridden (then the report says so)
    let chosen: { tStar: number; steps: number };
    try {
      chosen = JSON.parse(await Deno.readTextFile(values.choose)).chosen;
    } catch (e) {
      if (values["t-star"] === undefined || values.steps === undefined) {
        usageError(
          `${values.choose}: ${
            (e as Error).message
          }; run bench diffpure-choose or give --t-star and --steps`,
        );
      }
      chosen = { tStar: values["t-star"]!, steps: values.steps! };
    }
    await paperTables({
      state: values.state,
      seed: values.seed,
      transferN: values["transfer-n"],
      whiteboxN: values["whitebox-n"],
      diffpureN: values["diffpure-n"],
      tStar: values["t-star"] ?? chosen.tStar,
      steps: values.steps ?? chosen.steps,
      eot: values.eot,
      rows: values.rows?.split(",").map((r) => r.trim()),
      blocks: blocks as (typeof BLOCKS)[number][],
      threads: values.threads,
      json: values.json,
    }, argv);
  },
});
