/**
 * `bench paper`: the paper's Tables 1 and 2 on Fashion-MNIST, every comparison system in rows.
 *
 * Rows (targets): every classifier bundle in models/ (the baselines, clean and PGD-AT), DiffPure
 * (the diffusion bundle purifies, a classifier labels; t* and steps as given, chosen on
 * validation by `bench diffpure-choose`), and the diffusion classifier on its default settings.
 *
 * Two blocks, as the issue asks:
 *   transfer     every attack made on the surrogate (the paper's protocol), on the first
 *                `transferN` seeded test images; the same adversarial images scored on every row.
 *   white-box    every row attacked through its own gradients on the first `whiteboxN` images:
 *                classifiers directly, DiffPure with exact gradients through every reverse step
 *                and EOT over its forward noise (`diffpureN` images). The DC's adaptive figures
 *                come from `bench table --mode adaptive` (its own records), not from here.
 * and the worst case per image over both blocks, on the images both scored.
 *
 * Each (block, row, cell) is checkpointed in `<state>/cells.json` as it finishes, and the
 * transfer block's adversarial images in `<state>/transfer/`, so a stopped run resumes. Sanity
 * checks per white-box row: an unbounded budget reaches 0% (deterministic rows), doubling the
 * PGD budget changes nothing beyond noise, accuracy does not rise with ε.
 */
import { join } from "node:path";
import { config } from "../config.ts";
import { isClassifier, isDiffusion, scanBundles } from "../lib/bundle.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { unetCalls } from "../lib/diffusion_classifier.ts";
import { attackCost, validateAttack } from "../lib/attacks/registry.ts";
import type { AttackConfig } from "../lib/attacks/config.ts";
import { adversarialSetKey, runShard } from "../lib/evaluation/engine.ts";
import {
  evaluationMode,
  type EvaluationSpec,
  type SourceSpec,
  type TargetSpec,
} from "../lib/evaluation/spec.ts";
import { modelSet, openTarget } from "../lib/evaluation/targets.ts";
import { gather, type LabelledImages, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { wilson } from "../lib/stats.ts";
import { budgetMonotone, type Check, doublingStable, unboundedBudget } from "../lib/sanity.ts";
import { STOCHASTIC_UNBOUNDED_SLACK } from "../lib/evaluation_checks.ts";
import { OnnxClassifier, OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { Progress } from "../cli/progress.ts";
import { machine, writeReport } from "./common.ts";
import { type CellSpec, parseCell } from "./robustness_table.ts";

/** The paper's Table 1 columns at the budgets. */
export const PAPER_CELLS = [
  "fgsm@linf:0.05",
  "pgd:40@linf:0.05",
  "autoattack:standard@linf:0.05",
  "fgsm@linf:0.1",
  "pgd:40@linf:0.1",
  "autoattack:standard@linf:0.1",
  "fgm@l2:1.5",
  "pgd:40@l2:1.5",
  "autoattack:standard@l2:1.5",
];
/** DiffPure's adaptive attacks: full gradients, EOT over the forward noise (AutoAttack-rand's
 * 20-draw APGD would cost ~1 h per cell on this CPU: not run, the table says so). */
export const DIFFPURE_CELLS = [
  "fgsm@linf:0.05",
  "pgd:40@linf:0.05",
  "fgsm@linf:0.1",
  "pgd:40@linf:0.1",
  "fgm@l2:1.5",
  "pgd:40@l2:1.5",
];
/** The robust-accuracy-vs-ε curve (white-box PGD-40, Linf); 0.05 and 0.1 are table cells. */
export const CURVE_EPS = [0.025, 0.05, 0.1, 0.15, 0.2, 0.3];
/** DiffPure's curve points beyond the table's (each costs ~4 CPU-minutes on 64 images here) */
export const DIFFPURE_CURVE_EPS = [0.05, 0.1, 0.2];

export interface PaperOptions {
  state: string;
  seed: number;
  transferN: number;
  whiteboxN: number;
  diffpureN: number;
  /** DiffPure settings (chosen on validation) */
  tStar: number;
  steps: number;
  eot: number;
  /** rows to run, by name (default: all) */
  rows?: string[];
  blocks: ("transfer" | "whitebox" | "sanity" | "curve")[];
  threads: number;
  json: string;
}

export interface Row {
  name: string;
  kind: TargetSpec["kind"];
  target: TargetSpec;
  /** the row's own gradients (absent: no white-box block here) */
  own?: SourceSpec;
  /** model evaluations one oracle call costs, in words */
  unit: string;
}

/** One finished (block, row, attack) cell, as checkpointed and reported. */
export interface CellOut {
  block: string;
  row: string;
  cell: string;
  attack: AttackConfig;
  mode: string;
  n: number;
  robust: number;
  accuracy: number;
  ci95: [number, number];
  clean_accuracy: number;
  /** oracle evaluations per image the attack may spend (its budget), and what one costs */
  budget_per_image: number;
  budget_unit: string;
  flags: number[];
  seconds: number;
  warnings?: string[];
}

interface State {
  /** the settings the cells were made with: a resumed run must match them */
  config?: Record<string, unknown>;
  clean: Record<string, number[]>;
  cells: Record<string, CellOut>;
  sanity: Record<string, Check[]>;
}

const keyOf = (block: string, row: string, cell: string) => `${block}|${row}|${cell}`;

export async function rowsFor(
  o: Pick<PaperOptions, "tStar" | "steps" | "seed" | "threads" | "eot">,
): Promise<{
  rows: Row[];
  diffusion: OnnxDiffusionModel;
  classifiers: Map<string, OnnxClassifier>;
  dc: DCSettings;
}> {
  const { bundles } = await scanBundles(config.modelsDir);
  const classifiers = new Map<string, OnnxClassifier>();
  let diffusion: OnnxDiffusionModel | undefined;
  for (const b of bundles) {
    if (isClassifier(b)) classifiers.set(b.id, new OnnxClassifier(b, { threads: o.threads }));
    else if (isDiffusion(b) && b.manifest.name === config.defaultBundle) {
      diffusion = new OnnxDiffusionModel(b, { threads: o.threads });
    }
  }
  if (!diffusion) throw new Error(`no ${config.defaultBundle} bundle under ${config.modelsDir}`);
  const { defaultSettings } = await import("../lib/dc_settings.ts");
  const dc = defaultSettings(diffusion.bundle.manifest);
  const surrogate = [...classifiers.keys()].find((id) => id.startsWith(config.defaultSurrogate));
  if (!surrogate) throw new Error(`no surrogate ${config.defaultSurrogate}`);
  const rows: Row[] = [...classifiers.keys()].sort().map((id) => ({
    name: id,
    kind: "classifier" as const,
    target: { kind: "classifier", bundle: id },
    own: { kind: "surrogate", bundle: id },
    unit: "one forward or forward+backward pass",
  }));
  const dp = {
    kind: "diffpure" as const,
    bundle: diffusion.id,
    classifier: surrogate,
    tStar: o.tStar,
    steps: o.steps,
    seed: o.seed,
  };
  rows.push({
    name: `diffpure(t*=${o.tStar},ddim${o.steps},eot${o.eot})+${surrogate}`,
    kind: "diffpure",
    target: dp,
    own: dp,
    unit: `${o.steps} UNet calls + the classifier (gradients: as many VJPs again)`,
  });
  rows.push({
    name: `dc(${diffusion.id}, default)`,
    kind: "dc",
    target: { kind: "dc", bundle: diffusion.id, adapter: null, settings: dc },
    unit: `≤ ${unetCalls(dc, diffusion.classNames.length)} UNet calls`,
  });
  return { rows, diffusion, classifiers, dc };
}

export async function paperTables(o: PaperOptions, argv: readonly string[]) {
  const { rows: all, diffusion, classifiers, dc } = await rowsFor(o);
  const rows = o.rows ? all.filter((r) => o.rows!.some((n) => r.name.startsWith(n))) : all;
  const models = modelSet(new Map([[diffusion.id, diffusion]]), classifiers);
  const surrogate = [...classifiers.keys()].find((id) => id.startsWith(config.defaultSurrogate))!;
  await Deno.mkdir(join(o.state, "transfer"), { recursive: true });
  const statePath = join(o.state, "cells.json");
  const state: State = await Deno.readTextFile(statePath).then(JSON.parse).catch(() => ({
    clean: {},
    cells: {},
    sanity: {},
  }));
  const save = () => Deno.writeTextFile(statePath, JSON.stringify(state));
  // cells are keyed by block, row and attack (DiffPure's row name carries t*, steps and EOT):
  // the rest of what made them must not change
  const made = {
    seed: o.seed,
    transferN: o.transferN,
    whiteboxN: o.whiteboxN,
    diffpureN: o.diffpureN,
    dc,
  };
  if (state.config && JSON.stringify(state.config) !== JSON.stringify(made)) {
    throw new Error(
      `${statePath} was made with ${JSON.stringify(state.config)}; this run asks for ` +
        `${JSON.stringify(made)}: use another --state folder`,
    );
  }
  state.config = made;
  const test = await loadTest(config.root);
  const maxN = Math.max(o.transferN, o.whiteboxN, o.diffpureN);
  const subset = seededSubset(test.n, maxN, o.seed);
  const setOf = (n: number): LabelledImages => gather(test, subset.subarray(0, n));
  const progress = new Progress("paper");
  const K = 10;

  const cleanOf = async (row: Row, n: number): Promise<Int32Array> => {
    const have = state.clean[row.name];
    if (have && have.length >= n) return Int32Array.from(have.slice(0, n));
    const set = setOf(n);
    progress.start(`${row.name}: clean (${n})`, n, "images");
    const pred = await openTarget(row.target, models).predict(
      set.images,
      n,
      (d, t) => progress.update(Math.min(n, Math.round((d / Math.max(t, 1)) * n))),
    );
    progress.end();
    state.clean[row.name] = Array.from(pred);
    await save();
    return pred;
  };

  const specOf = (attack: AttackConfig, source: SourceSpec, target: TargetSpec, n: number) => {
    const base = {
      attack,
      source,
      dataset: { name: "fashion-mnist-test" as const, n, seed: o.seed },
    };
    return {
      ...base,
      target,
      setKey: adversarialSetKey(base),
      mode: evaluationMode(source, target),
    } as EvaluationSpec;
  };

  const configOf = (c: CellSpec, eot = 1): AttackConfig => {
    const steps = c.param && /^\d+$/.test(c.param) ? Number(c.param) : undefined;
    const version = c.param && !steps ? c.param as AttackConfig["version"] : undefined;
    return validateAttack(
      {
        attack: c.attack,
        norm: c.norm,
        eps: c.eps,
        steps,
        version,
        seed: o.seed,
        ...(eot > 1 ? { eotIter: eot } : {}),
      },
      K,
      1_000_000,
    );
  };

  /** One (block, row, cell): attack (or reuse `adv`), score, checkpoint. */
  const runCell = async (
    block: string,
    row: Row,
    cellKey: string,
    source: SourceSpec,
    n: number,
    opts: { adv?: Float32Array; eot?: number; save?: boolean } = {},
  ): Promise<CellOut> => {
    const key = keyOf(block, row.name, cellKey);
    if (state.cells[key]) return state.cells[key];
    const cell = parseCell(cellKey);
    const attack = configOf(cell, opts.eot);
    const set = setOf(n);
    const clean = await cleanOf(row, n);
    const t0 = performance.now();
    let phase = "";
    const run = await runShard({
      spec: specOf(attack, source, row.target, n),
      indices: Array.from(subset.subarray(0, n)),
      images: set,
      shape: diffusion.imageShape,
      dc,
      adv: opts.adv ?? null,
      cleanPred: clean,
      score: "changed",
      onProgress: (name, done, total, unit) => {
        if (name !== phase) {
          progress.start(`${block} ${row.name} ${cellKey}: ${(phase = name)}`, total, unit);
        }
        progress.update(done, total);
      },
    }, models);
    progress.end();
    const flags = run.items.map((
      it,
    ) => (it.cleanPred === it.label && it.advPred === it.label ? 1 : 0));
    const robust = flags.reduce((a: number, f) => a + f, 0);
    const cleanRight = run.items.filter((it) => it.cleanPred === it.label).length;
    const out: CellOut = {
      block,
      row: row.name,
      cell: cellKey,
      attack,
      mode: specOf(attack, source, row.target, n).mode,
      n,
      robust,
      accuracy: robust / n,
      ci95: wilson(robust, n),
      clean_accuracy: cleanRight / n,
      budget_per_image: attackCost(attack, K),
      budget_unit: source.kind === "surrogate" && source.bundle !== row.target.bundle
        ? `evaluations of the surrogate ${source.bundle}`
        : `evaluations of ${row.name} (${row.unit})`,
      flags,
      seconds: (performance.now() - t0) / 1000,
      ...(run.warnings.length ? { warnings: run.warnings } : {}),
    };
    if (opts.save && !opts.adv) {
      await Deno.writeFile(
        join(o.state, "transfer", `${cellKey.replace(/[^a-z0-9.]+/gi, "_")}.f32`),
        new Uint8Array(run.xAdv.buffer, run.xAdv.byteOffset, run.xAdv.byteLength),
      );
    }
    state.cells[key] = out;
    await save();
    return out;
  };

  const surrogateRow = all.find((r) => r.name === surrogate)!;
  const surrogateSource: SourceSpec = { kind: "surrogate", bundle: surrogate };

  if (o.blocks.includes("transfer")) {
    for (const cellKey of PAPER_CELLS) {
      // adversarial images made once on the surrogate (its own white-box cell on transferN)
      const file = join(o.state, "transfer", `${cellKey.replace(/[^a-z0-9.]+/gi, "_")}.f32`);
      await runCell("transfer", surrogateRow, cellKey, surrogateSource, o.transferN, {
        save: true,
      });
      const adv = new Float32Array((await Deno.readFile(file)).buffer);
      for (const row of rows) {
        if (row.name === surrogate) continue;
        await runCell("transfer", row, cellKey, surrogateSource, o.transferN, { adv });
      }
    }
  }
  if (o.blocks.includes("whitebox")) {
    for (const row of rows) {
      if (!row.own) continue;
      const dp = row.kind === "diffpure";
      // the cheap attacks of every budget first, AutoAttack last (it costs the most by far)
      const order = [...(dp ? DIFFPURE_CELLS : PAPER_CELLS)].sort((a, b) =>
        Number(a.startsWith("autoattack")) - Number(b.startsWith("autoattack"))
      );
      for (const cellKey of order) {
        await runCell("whitebox", row, cellKey, row.own, dp ? o.diffpureN : o.whiteboxN, {
          eot: dp ? o.eot : 1,
        });
      }
    }
  }
  if (o.blocks.includes("curve")) {
    for (const row of rows) {
      if (!row.own) continue;
      const dp = row.kind === "diffpure";
      for (const eps of dp ? DIFFPURE_CURVE_EPS : CURVE_EPS) {
        await runCell(
          "whitebox",
          row,
          `pgd:40@linf:${eps}`,
          row.own,
          dp ? o.diffpureN : o.whiteboxN,
          { eot: dp ? o.eot : 1 },
        );
      }
    }
  }
  if (o.blocks.includes("sanity")) {
    // on the first white-box images (32; DiffPure 16, ~13 CPU-minutes a PGD-40 cell here):
    // unbounded budget, doubled PGD steps (EOT draws unchanged)
    for (const row of rows) {
      if (!row.own) continue;
      const dp = row.kind === "diffpure";
      const m = dp ? 16 : 32;
      const eot = dp ? o.eot : 1;
      const base = await runCell("sanity", row, "pgd:40@linf:0.1", row.own, m, { eot });
      const dbl = await runCell("sanity", row, "pgd:80@linf:0.1", row.own, m, { eot });
      const unb = await runCell("sanity", row, "pgd:40@linf:1", row.own, m, { eot });
      const sweep = Object.values(state.cells)
        .filter((c) =>
          c.block === "whitebox" && c.row === row.name && c.attack.attack === "pgd" &&
          c.attack.norm === "linf"
        )
        .map((c) => ({ eps: c.attack.eps, robust: c.accuracy }));
      state.sanity[row.name] = [
        unboundedBudget(unb.accuracy, dp ? STOCHASTIC_UNBOUNDED_SLACK : 0),
        doublingStable(Uint8Array.from(base.flags), Uint8Array.from(dbl.flags)),
        budgetMonotone(sweep, 0.05),
      ];
      await save();
    }
  }
  const report = {
    benchmark: "paper-tables",
    what:
      "the paper's Table 1/2 rows on Fashion-MNIST: transfer (made on the surrogate) and white-box/adaptive (own gradients) blocks",
    command: `deno task cli bench paper ${argv.join(" ")}`,
    seed: o.seed,
    subset:
      "first n of lib/fashion_mnist.ts seededSubset(10000, n, seed), Fashion-MNIST test split",
    surrogate,
    diffpure: {
      tStar: o.tStar,
      steps: o.steps,
      eot: o.eot,
      sampler: "DDIM (eta 0), unconditional (null class)",
    },
    dc_settings: dc,
    rows: all.map((r) => ({ name: r.name, kind: r.kind, target: r.target, unit: r.unit })),
    clean: Object.fromEntries(Object.entries(state.clean).map(([k, v]) => [k, v.length])),
    cells: Object.values(state.cells).map(({ flags: _f, ...c }) => c),
    sanity: state.sanity,
    machine: machine(),
  };
  await writeReport(o.json, report, 1);
  return report;
}
