/** `bench dump-errors`: the classifier's full error grid on a seeded subset, for offline policies. */
import { dumpErrors } from "../bench/error_dump.ts";
import { writeReport } from "../bench/common.ts";
import { defineCommand } from "./command.ts";
import { DIFFUSION_BUNDLE, THREADS } from "./shared_options.ts";

export const benchDumpErrors = defineCommand({
  summary: "every (class, grid timestep) error, L1 and L2, of a seeded subset (resumable)",
  description: "Writes DIR/meta.json, DIR/l1.f32 and DIR/l2.f32 ([image][class][grid index], " +
    "float32); any schedule on that grid can then be simulated without UNet calls " +
    "(lib/error_grid.ts simulateStaged reproduces the engine exactly).",
  options: {
    split: {
      type: "enum",
      values: ["validation", "test"],
      default: "validation",
      help: "choose settings on validation; test only for reported numbers",
    },
    n: { type: "int", min: 1, max: 10000, default: 1024, help: "images of the seeded subset" },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "subset seed" },
    bundle: DIFFUSION_BUNDLE,
    settings: {
      type: "settings",
      help: "grid to dump: gridSize, tRange, timesteps, seed (default: the bundle's)",
    },
    threads: THREADS,
    chunk: { type: "int", min: 1, max: 4096, default: 16, help: "images per checkpoint" },
    out: { type: "path", required: true, arg: "DIR", help: "dump folder (resumed if it exists)" },
    json: { type: "path", default: "-", help: "the dump's meta report (- = stdout)" },
  },
  async run(values, _, argv) {
    const meta = await dumpErrors({
      split: values.split,
      n: values.n,
      seed: values.seed,
      bundle: values.bundle,
      settings: values.settings,
      threads: values.threads,
      chunk: values.chunk,
      out: values.out,
    }, argv);
    const { indices: _i, labels: _l, ...summary } = meta;
    await writeReport(values.json, summary);
  },
});
