/**
 * Truth-Maximization reports.
 *   bench tm-curve     every checkpoint of a fine-tune scored on test images under a stored
 *                      transfer attack (validation numbers come from the fine-tune itself);
 *                      JSON and an SVG plot.
 *   bench tm-ablation  DC vs TMDC from two `bench table` runs on the same images and attacks:
 *                      per cell the overall robust accuracy with its interval, the 5 folds'
 *                      mean ± sd, and a paired sign test on per-image outcomes.
 */
import { join } from "node:path";
import { config } from "../config.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import { gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { signTestP } from "../lib/sanity.ts";
import { wilson } from "../lib/stats.ts";
import {
  loadAdapter,
  machine,
  openDiffusion,
  settingsFor,
  usageError,
  writeReport,
} from "./common.ts";
import { cellFile } from "./robustness_table.ts";
import { lineChart } from "./svg_plot.ts";
import { Progress } from "../cli/progress.ts";
import { readUserJson } from "../cli/paths.ts";

const sum = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0);

/** The checked options of `bench tm-curve` (cli/bench_tm_curve.ts declares them). */
export interface CurveOptions {
  /** the `finetune` report, as the user named it (recorded in the output) */
  finetune: string;
  adv: string;
  cell: string;
  n: number;
  seed: number;
  bundle: string;
  threads: number;
  json: string;
  svg?: string;
  /** comma-separated `bench table` reports, as the user named them */
  "test-from"?: string;
}

/** The fields of a `finetune` report the curves read. */
interface FinetuneReport {
  best_step: number;
  validation_base_dc: { n: number; robust_accuracy: number };
  checkpoints: { step: number; adapter_id: string; validation_robust_accuracy: number }[];
}

export async function tmCurve(values: CurveOptions, args: readonly string[]) {
  if (values["test-from"]) return await curveFromTables(values, args);
  const ft = await readUserJson<FinetuneReport>(values.finetune);
  const model = await openDiffusion(values.bundle, values.threads);
  const dc = settingsFor(model);
  const n = values.n;
  const test = await loadTest(config.root);
  const set = gather(test, seededSubset(test.n, n, values.seed));
  const all = new Float32Array(
    (await Deno.readFile(join(values.adv, cellFile(values.cell)))).buffer,
  );
  const xAdv = all.subarray(0, set.images.length); // the table's subset starts with these n images
  const t0 = performance.now();
  const score = async (lora?: Float32Array[]) => {
    const c = await classifyImages(model, set.images, n, dc, { lora });
    const a = await classifyImages(model, xAdv, n, dc, { lora });
    const clean = c.map((v, i) => (v.label === set.labels[i] ? 1 : 0));
    const robust = a.map((v, i) => (v.label === set.labels[i] && clean[i] ? 1 : 0));
    return {
      n,
      clean_accuracy: sum(clean) / n,
      robust_accuracy: sum(robust) / n,
      ci95: wilson(sum(robust), n),
    };
  };
  // one scoring pass per checkpoint (and the base DC): their count is the progress
  const progress = new Progress("tm-curve");
  progress.start(`score ${n} clean + ${n} adversarial images`, ft.checkpoints.length + 1, "models");
  const rows = [{
    step: 0,
    adapter_id: null as string | null,
    validation_robust_accuracy: ft.validation_base_dc.robust_accuracy,
    test: await score(),
  }];
  progress.update(1);
  for (const [k, cp] of ft.checkpoints.entries()) {
    const { lora } = await loadAdapter(cp.adapter_id, model);
    rows.push({
      step: cp.step,
      adapter_id: cp.adapter_id,
      validation_robust_accuracy: cp.validation_robust_accuracy,
      test: await score(lora),
    });
    progress.update(
      k + 2,
      undefined,
      `step ${cp.step}: robust ${rows.at(-1)!.test.robust_accuracy}`,
    );
  }
  progress.end();
  const out = {
    ...curveHead(
      args,
      values,
      ft,
      "TMDC checkpoints under a TRANSFER attack (adversarial examples made on the surrogate); step 0 is the base DC",
    ),
    test_n: n,
    test_subset: `first ${n} of seededSubset(10000, ${n}, ${values.seed}), Fashion-MNIST test`,
    rows,
    seconds: (performance.now() - t0) / 1000,
    machine: machine(),
  };
  await writeReport(values.json, out);
  if (values.svg) {
    await Deno.writeTextFile(values.svg, curveSvg(values.cell, out.validation_n, rows, [0, 1]));
  }
}

/** The fields both checkpoint-curve reports share. */
function curveHead(
  args: readonly string[],
  values: { cell: string; finetune: string },
  ft: { best_step: number; validation_base_dc: { n: number } },
  what: string,
) {
  return {
    benchmark: "tm-curve",
    command: `deno task cli bench tm-curve ${args.join(" ")}`,
    what,
    attack: values.cell,
    finetune: values.finetune,
    best_step_on_validation: ft.best_step,
    validation_n: ft.validation_base_dc.n,
  };
}

interface CurveRow {
  step: number;
  validation_robust_accuracy: number;
  test: { n?: number; robust_accuracy: number; ci95: [number, number] } | null;
}

/** Validation at every checkpoint, test (with its interval) where it was measured. */
function curveSvg(cell: string, validationN: number, rows: CurveRow[], yRange: [number, number]) {
  const tested = rows.filter((r) => r.test);
  return lineChart(
    `TMDC checkpoints, transfer ${cell}`,
    "fine-tuning step (0 = base DC)",
    "robust accuracy",
    [
      {
        name: `validation (n=${validationN})`,
        color: "#1f77b4",
        points: rows.map((r) => ({ x: r.step, y: r.validation_robust_accuracy })),
      },
      {
        name: `test (n=${tested[0]?.test?.n}), 95% CI`,
        color: "#d62728",
        points: tested.map((r) => ({
          x: r.step,
          y: r.test!.robust_accuracy,
          lo: r.test!.ci95[0],
          hi: r.test!.ci95[1],
        })),
      },
    ],
    yRange,
  );
}

/**
 * The curve without new classifications: validation per checkpoint from the fine-tune, test
 * where `bench table` reports exist (the base DC = step 0, and the adapters they name).
 */
async function curveFromTables(values: CurveOptions, args: readonly string[]) {
  const ft = await readUserJson<FinetuneReport>(values.finetune);
  const tables = await Promise.all(
    values["test-from"]!.split(",").map((f) => readUserJson<TableReport>(f.trim())),
  );
  const testAt = (step: number, adapterId: string | null) => {
    const t = tables.find((r) =>
      ((r.target.adapter as { id: string } | null)?.id ?? null) === adapterId
    );
    const cell = t?.cells.find((c) => c.key === values.cell);
    if (!t || !cell || !t.clean.dc_correct_flags) return null;
    const k = sum(cell.dc_robust_flags);
    return {
      n: t.n,
      clean_accuracy: sum(t.clean.dc_correct_flags) / t.n,
      robust_accuracy: k / t.n,
      ci95: wilson(k, t.n),
      step,
    };
  };
  const rows = [
    {
      step: 0,
      adapter_id: null,
      validation_robust_accuracy: ft.validation_base_dc.robust_accuracy,
      test: testAt(0, null),
    },
    ...ft.checkpoints.map((
      cp: { step: number; adapter_id: string; validation_robust_accuracy: number },
    ) => ({
      step: cp.step,
      adapter_id: cp.adapter_id,
      validation_robust_accuracy: cp.validation_robust_accuracy,
      test: testAt(cp.step, cp.adapter_id),
    })),
  ];
  const out = {
    ...curveHead(
      args,
      values,
      ft,
      "TMDC checkpoints: validation robust accuracy at every checkpoint (from the fine-tune); test robust accuracy where a `bench table` run exists (step 0 = base DC). Attack TRANSFERRED from the surrogate.",
    ),
    test_from: values["test-from"],
    rows,
    machine: machine(),
  };
  await writeReport(values.json, out);
  if (values.svg) {
    await Deno.writeTextFile(values.svg, curveSvg(values.cell, out.validation_n, rows, [0.6, 1]));
  }
}

interface TableReport {
  mode: string;
  n: number;
  seed: number;
  clean: { dc_accuracy: number; dc_correct_flags?: number[] };
  cells: { key: string; attack: unknown; dc_robust_flags: number[] }[];
  target: { adapter: unknown };
  source: unknown;
}

/** The checked options of `bench tm-ablation` (cli/bench_tm_ablation.ts declares them). */
export interface AblationOptions {
  base: string;
  tmdc: string;
  folds: number;
  json: string;
}

export async function tmAblation(values: AblationOptions, args: readonly string[]) {
  const base = await readUserJson<TableReport>(values.base);
  const tm = await readUserJson<TableReport>(values.tmdc);
  if (base.n !== tm.n || base.seed !== tm.seed || base.mode !== tm.mode) {
    usageError("the two tables must share mode, n and seed");
  }
  const F = values.folds;
  const n = base.n;
  const folds = (flags: number[]) =>
    Array.from({ length: F }, (_, k) => {
      const f = flags.filter((_, i) => i % F === k);
      return sum(f) / f.length;
    });
  const meanSd = (v: number[]) => {
    const m = v.reduce((a, b) => a + b, 0) / v.length;
    return { mean: m, sd: Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) };
  };
  const compare = (key: string, a: number[], b: number[]) => {
    let up = 0;
    let down = 0;
    a.forEach((v, i) => {
      if (b[i] && !v) up++;
      if (v && !b[i]) down++;
    });
    return {
      cell: key,
      dc: { accuracy: sum(a) / n, ci95: wilson(sum(a), n), folds: folds(a), ...meanSd(folds(a)) },
      tmdc: { accuracy: sum(b) / n, ci95: wilson(sum(b), n), folds: folds(b), ...meanSd(folds(b)) },
      paired: { tmdc_only: up, dc_only: down, sign_test_p: signTestP(up, down) },
    };
  };
  const rows = [];
  if (base.clean.dc_correct_flags && tm.clean.dc_correct_flags) {
    rows.push(compare("clean", base.clean.dc_correct_flags, tm.clean.dc_correct_flags));
  }
  for (const c of base.cells) {
    const o = tm.cells.find((d) => d.key === c.key);
    if (o) rows.push(compare(c.key, c.dc_robust_flags, o.dc_robust_flags));
  }
  const out = {
    benchmark: "tm-ablation",
    command: `deno task cli bench tm-ablation ${args.join(" ")}`,
    mode: base.mode,
    what: base.mode === "transfer"
      ? "DC vs TMDC, attacks TRANSFERRED from the surrogate (the paper's protocol)"
      : "DC vs TMDC, ADAPTIVE attacks through each model itself",
    n,
    seed: base.seed,
    folds: `${F} disjoint folds of the seeded subset (fold k = images i with i mod ${F} = k)`,
    tmdc_adapter: tm.target.adapter,
    source: { dc: base.source, tmdc: tm.source },
    rows,
    machine: machine(),
  };
  await writeReport(values.json, out);
  console.log(
    JSON.stringify(
      rows.map((r) => ({
        cell: r.cell,
        dc: r.dc.accuracy,
        tmdc: r.tmdc.accuracy,
        p: r.paired.sign_test_p,
      })),
    ),
  );
}
