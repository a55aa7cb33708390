/**
 * `bench frontier`: the classifier's accuracy-and-cost frontier, simulated on full error grids
 * (`bench dump-errors`) without UNet calls: staged schedules, sequential pruning (z, batch,
 * minimum and maximum timesteps), L1 vs L2, and timestep ranges that are prefixes of the dumped
 * grid (so the simulated timesteps and noise draws are exactly the engine's). The policy is chosen
 * on the validation dump — the cheapest within 0.5 pt of the best — and, given a test dump, the
 * chosen policy, the bundle's old default and the full grid are reported on test with paired
 * sign tests. Writes JSON, and the frontier as SVG and PNG.
 */
import { join } from "node:path";
import sharp from "sharp";
import type { DCSettings } from "../lib/dc_settings.ts";
import { type ErrorGrid, simulateSequential, simulateStaged } from "../lib/error_grid.ts";
import { timestepOrder } from "../lib/class_pruning.ts";
import { weighted } from "../lib/diffusion_classifier.ts";
import { fitTimestepWeights } from "../lib/timestep_weights.ts";
import { signTestP } from "../lib/sanity.ts";
import { wilson } from "../lib/stats.ts";
import { Progress } from "../cli/progress.ts";
import type { DumpMeta } from "./error_dump.ts";
import { machine, writeReport } from "./common.ts";
import { lineChart } from "./svg_plot.ts";

export interface Dump {
  meta: DumpMeta;
  grid: ErrorGrid;
}

export async function loadDump(dir: string): Promise<Dump> {
  const meta = JSON.parse(await Deno.readTextFile(join(dir, "meta.json"))) as DumpMeta;
  const read = async (f: string) => new Float32Array((await Deno.readFile(join(dir, f))).buffer);
  const [l1, l2] = await Promise.all([read("l1.f32"), read("l2.f32")]);
  const n = meta.done;
  if (l1.length !== n * meta.classes * meta.grid || l2.length !== l1.length) {
    throw new Error(`${dir}: the error files do not hold ${n} whole images`);
  }
  return {
    meta: { ...meta, labels: meta.labels.slice(0, n) },
    grid: { n, classes: meta.classes, grid: meta.grid, l1, l2 },
  };
}

/** The first `g` grid indices of every (image, class): the grid of tRange [lo, lo + g·step). */
export function gridPrefix(full: ErrorGrid, g: number): ErrorGrid {
  if (g === full.grid) return full;
  const rows = full.n * full.classes;
  const cut = (a: Float32Array) => {
    const out = new Float32Array(rows * g);
    for (let r = 0; r < rows; r++) out.set(a.subarray(r * full.grid, r * full.grid + g), r * g);
    return out;
  };
  return { n: full.n, classes: full.classes, grid: g, l1: cut(full.l1), l2: cut(full.l2) };
}

export interface Policy {
  name: string;
  settings: DCSettings;
  /**
   * Weighted policies: weights fit on each half of the validation dump. On validation an image
   * is scored with the weights of the half it is not in (cross-fitting: no image is scored with
   * weights learned on itself); `settings.weights` (fit on all of validation) serve on test.
   */
  crossFit?: { half: number; fromFirst: number[]; fromSecond: number[] };
}

/** λ of the weight fit: the cross-fitted validation accuracy was flat over 0.001…0.1. */
export const WEIGHT_RIDGE = 0.01;

/**
 * The weighted twin of every policy: per-timestep weights fit (lib/timestep_weights.ts) on the
 * validation dump for each grid prefix and error norm, cross-fitted as `Policy.crossFit` says.
 */
export function weightedPolicies(val: Dump, plain: Policy[], progress?: Progress): Policy[] {
  const fits = new Map<string, Policy["crossFit"] & { all: number[] }>();
  const n = val.grid.n;
  const half = Math.floor(n / 2);
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const keys = [...new Set(plain.map((p) => `${p.settings.error}:${p.settings.gridSize}`))];
  progress?.start("timestep weights (fits)", keys.length, "fits");
  keys.forEach((key, k) => {
    const [error, g] = [key.split(":")[0] as "l1" | "l2", Number(key.split(":")[1])];
    const grid = gridPrefix(val.grid, g);
    const err = error === "l2" ? grid.l2 : grid.l1;
    const fit = (subset: number[]) =>
      fitTimestepWeights(err, val.meta.labels, grid.classes, g, subset, { lambda: WEIGHT_RIDGE })
        .weights;
    fits.set(key, {
      half,
      fromFirst: fit(range(0, half)),
      fromSecond: fit(range(half, n)),
      all: fit(range(0, n)),
    });
    progress?.update(k + 1);
  });
  progress?.end();
  return plain.map((p) => {
    const f = fits.get(`${p.settings.error}:${p.settings.gridSize}`)!;
    return {
      name: `${p.name} weighted`,
      settings: { ...p.settings, weights: f.all },
      crossFit: { half: f.half, fromFirst: f.fromFirst, fromSecond: f.fromSecond },
    };
  });
}

/** The settings image i is scored with: cross-fitted weights on validation. */
function settingsFor(p: Policy, i: number, validation: boolean): DCSettings {
  if (!validation || !p.crossFit) return p.settings;
  const c = p.crossFit;
  return { ...p.settings, weights: i < c.half ? c.fromSecond : c.fromFirst };
}

/** Every policy family on the dump's grid (settings `base`: its grid, tRange, seed). */
export function policies(base: DCSettings): Policy[] {
  const G = base.gridSize;
  const step = Math.floor((base.tRange[1] - base.tRange[0]) / G);
  const out: Policy[] = [];
  for (const error of ["l1", "l2"] as const) {
    for (
      const g of [...new Set([G, Math.round(G * 0.7), Math.round(G / 2), Math.round(G * 0.3)])]
    ) {
      const s: DCSettings = {
        ...base,
        error,
        gridSize: g,
        tRange: [base.tRange[0], base.tRange[0] + g * step],
        sequential: undefined,
      };
      const range = g === G ? "" : ` t<${s.tRange[1]}`;
      out.push({
        name: `full ${g}×K ${error}${range}`,
        settings: { ...s, stages: [{ nSamples: g, keep: 1 }] },
      });
      for (const n of [5, 10, 20, 25, 50].filter((n) => n < g)) {
        out.push({
          name: `subgrid ${n} ${error}${range}`,
          settings: { ...s, stages: [{ nSamples: n, keep: 1 }] },
        });
        for (const keep of [2, 3, 5]) {
          for (const n2 of [...new Set([g, Math.round(g / 2)])].filter((m) => m > n)) {
            out.push({
              name: `staged ${n}→keep ${keep}→${n2} ${error}${range}`,
              settings: { ...s, stages: [{ nSamples: n, keep }, { nSamples: n2, keep: 1 }] },
            });
          }
        }
      }
      for (const z of [1, 1.5, 2, 2.5, 3, 4]) {
        for (const batch of [1, 2, 5]) {
          for (const min of [3, 5, 10]) {
            for (
              const max of [...new Set([g, Math.round(g / 2), Math.round(g / 4)])].filter((m) =>
                m >= min
              )
            ) {
              out.push({
                name: `sequential z ${z} batch ${batch} min ${min} max ${max} ${error}${range}`,
                settings: {
                  ...s,
                  stages: [{ nSamples: g, keep: 1 }],
                  sequential: { z, batch, minTimesteps: min, maxTimesteps: max, orderSeed: 0 },
                },
              });
            }
          }
        }
      }
    }
  }
  return out;
}

export interface PolicyScore {
  name: string;
  n: number;
  correct: number;
  accuracy: number;
  ci95: [number, number];
  mean_calls: number;
  max_calls: number;
  /** per image: 1 = right (for paired tests) */
  flags: Uint8Array;
}

export function score(dump: Dump, p: Policy, g = gridPrefix(dump.grid, p.settings.gridSize)) {
  const validation = dump.meta.split === "validation";
  const flags = new Uint8Array(g.n);
  let calls = 0;
  let maxCalls = 0;
  for (let i = 0; i < g.n; i++) {
    const s = settingsFor(p, i, validation);
    const v = s.sequential ? simulateSequential(g, i, s) : simulateStaged(g, i, s);
    const c = "unetCalls" in v ? v.unetCalls : v.calls;
    flags[i] = v.label === dump.meta.labels[i] ? 1 : 0;
    calls += c;
    maxCalls = Math.max(maxCalls, c);
  }
  const correct = flags.reduce((a, f) => a + f, 0);
  const out: PolicyScore = {
    name: p.name,
    n: g.n,
    correct,
    accuracy: correct / g.n,
    ci95: wilson(correct, g.n),
    mean_calls: calls / g.n,
    max_calls: maxCalls,
    flags,
  };
  return out;
}

/** Policies no other beats on both accuracy and mean calls. */
export function pareto(scores: PolicyScore[]): PolicyScore[] {
  const sorted = [...scores].sort((a, b) => a.mean_calls - b.mean_calls || b.accuracy - a.accuracy);
  const out: PolicyScore[] = [];
  for (const s of sorted) if (!out.length || s.accuracy > out[out.length - 1].accuracy) out.push(s);
  return out;
}

/** Paired comparison of two policies on the same images (exact two-sided sign test). */
export function paired(a: PolicyScore, b: PolicyScore) {
  let aOnly = 0;
  let bOnly = 0;
  for (let i = 0; i < a.flags.length; i++) {
    if (a.flags[i] && !b.flags[i]) aOnly++;
    if (b.flags[i] && !a.flags[i]) bOnly++;
  }
  return {
    a: a.name,
    b: b.name,
    right_only_a: aOnly,
    right_only_b: bOnly,
    p: signTestP(aOnly, bOnly),
  };
}

const view = ({ flags: _f, ...s }: PolicyScore) => s;

export interface FrontierOptions {
  validation: string;
  test?: string;
  tolerance: number;
  json: string;
  svg?: string;
  png?: string;
}

export async function frontier(o: FrontierOptions, argv: readonly string[]) {
  const val = await loadDump(o.validation);
  if (val.meta.split !== "validation") {
    throw new Error(`${o.validation} is a ${val.meta.split} dump; choose on validation`);
  }
  const base = val.meta.settings;
  const plain = policies({ ...base, stages: base.stages });
  const progress = new Progress("frontier");
  const all = [...plain, ...weightedPolicies(val, plain, progress)];
  progress.start("policies on validation", all.length, "policies");
  const prefixes = new Map<number, ErrorGrid>();
  const scores = all.map((p, k) => {
    const g = p.settings.gridSize;
    if (!prefixes.has(g)) prefixes.set(g, gridPrefix(val.grid, g));
    const s = score(val, p, prefixes.get(g));
    progress.update(k + 1);
    return s;
  });
  const best = scores.reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
  const eligible = scores.filter((s) => s.accuracy >= best.accuracy - o.tolerance);
  const chosen = eligible.reduce((a, b) => (b.mean_calls < a.mean_calls ? b : a));
  const picked = all[scores.indexOf(chosen)];
  // the posterior's scale belongs to the error norm: refit it for the chosen policy
  const fit = fitPosteriorScale(val, picked.settings);
  const chosenPolicy: Policy = {
    ...picked,
    settings: { ...picked.settings, posteriorScale: fit.scale },
  };
  const oldDefault: Policy = { name: `old default (${describeStages(base)})`, settings: base };
  const fullGrid = (error: "l1" | "l2"): Policy => ({
    name: `full grid ${base.gridSize}×K ${error}`,
    settings: {
      ...base,
      error,
      stages: [{ nSamples: base.gridSize, keep: 1 }],
      sequential: undefined,
    },
  });
  // the full grid with learned weights (fit on all of validation; cross-fitted on validation)
  const weightedFull = (error: "l1" | "l2"): Policy => {
    const p = all.find((q) => q.name === `full ${base.gridSize}×K ${error} weighted`)!;
    return { ...p, name: `full grid ${base.gridSize}×K ${error} weighted` };
  };
  const refs = [
    oldDefault,
    fullGrid("l1"),
    fullGrid("l2"),
    weightedFull("l1"),
    weightedFull("l2"),
  ];
  const front = pareto(scores);

  let test: Record<string, unknown> | null = null;
  let frontTest: PolicyScore[] = [];
  if (o.test) {
    const t = await loadDump(o.test);
    if (t.meta.split !== "test") throw new Error(`${o.test} is not a test dump`);
    if (
      t.meta.bundle !== val.meta.bundle || JSON.stringify(t.meta.settings) !== JSON.stringify(base)
    ) {
      throw new Error(
        "the test dump was made with another bundle or grid than the validation dump",
      );
    }
    const c = score(t, chosenPolicy);
    const r = refs.map((p) => score(t, p));
    // the stricter full grid: the more accurate of L1 and L2 on test (unweighted: the issue's
    // "full grid"), and the most accurate full grid of any definition (weighted ones too)
    const full = r[1].accuracy >= r[2].accuracy ? r[1] : r[2];
    const bestFull = r.slice(1).reduce((a, b) => (b.accuracy > a.accuracy ? b : a));
    frontTest = front.map((s) => score(t, all[scores.indexOf(s)]));
    test = {
      n: t.grid.n,
      subset: t.meta.subset,
      chosen: view(c),
      references: r.map(view),
      paired: r.map((x) => paired(c, x)),
      chosen_calls_fraction_of_full: c.mean_calls / full.mean_calls,
      chosen_minus_best_full_grid_pt: (c.accuracy - full.accuracy) * 100,
      best_full_grid_any_definition: bestFull.name,
      chosen_minus_best_full_grid_any_definition_pt: (c.accuracy - bestFull.accuracy) * 100,
    };
  }
  progress.end();
  const report = {
    benchmark: "dc-frontier",
    what:
      "diffusion-classifier policies simulated on full error grids (exact: lib/error_grid.ts reproduces the engine); chosen on validation, reported on test",
    command: `deno task cli bench frontier ${argv.join(" ")}`,
    bundle: val.meta.bundle,
    grid: {
      settings: base,
      classes: val.meta.classes,
      calls_full_grid: base.gridSize * val.meta.classes,
    },
    validation: {
      dump: o.validation,
      n: val.grid.n,
      subset: val.meta.subset,
      policies: scores.length,
    },
    rule: `cheapest mean calls among policies within ${
      o.tolerance * 100
    } pt of the best validation accuracy`,
    best_on_validation: view(best),
    chosen: { ...view(chosen), settings: chosenPolicy.settings, posterior_scale_fit: fit },
    references_on_validation: refs.map((p) => view(score(val, p))),
    pareto_validation: front.map(view),
    pareto_test: frontTest.map(view),
    test,
    all_policies_validation: scores.map(view),
    machine: machine(),
  };
  await writeReport(o.json, report, 1);
  if (o.svg || o.png) {
    const svg = lineChart(
      `DC frontier: accuracy vs UNet calls per image (${val.meta.bundle})`,
      "mean UNet calls per image",
      "accuracy",
      [
        {
          name: `Pareto, validation (n=${val.grid.n})`,
          color: "#2a6fdb",
          points: front.map((s) => ({
            x: Math.round(s.mean_calls),
            y: s.accuracy,
            lo: s.ci95[0],
            hi: s.ci95[1],
          })),
        },
        ...(frontTest.length
          ? [{
            name: `same policies, test (n=${frontTest[0].n})`,
            color: "#d94f2a",
            points: frontTest.map((s) => ({
              x: Math.round(front[frontTest.indexOf(s)].mean_calls),
              y: s.accuracy,
              lo: s.ci95[0],
              hi: s.ci95[1],
            })),
          }]
          : []),
        ...refs.map((p, k) => {
          const v = score(val, p);
          return {
            name: `${p.name}, validation`,
            color: ["#555", "#7a3", "#a3a", "#3aa", "#c80"][k],
            points: [{ x: Math.round(v.mean_calls), y: v.accuracy }],
          };
        }),
        {
          name: `chosen: ${chosen.name.replace(/ batch.*max/, " … max")}`,
          color: "#000",
          points: [{ x: Math.round(chosen.mean_calls), y: chosen.accuracy }],
        },
      ],
      [Math.max(0, Math.floor(Math.min(...front.map((s) => s.accuracy)) * 10) / 10), 1],
      { xLog: true, width: 900, legend: 330 },
    );
    if (o.svg) await Deno.writeTextFile(o.svg, svg);
    if (o.png) await sharp(new TextEncoder().encode(svg)).png().toFile(o.png);
  }
  return report;
}

/**
 * The posterior scale minimising the validation NLL of the true class under
 * softmax(−mean error × scale) over the classes still in the race at the end (images whose true
 * class left earlier have posterior 0 at any scale and are skipped), on a log grid.
 */
export function fitPosteriorScale(dump: Dump, s: DCSettings) {
  const grid = [1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 30000, 100000];
  const g = gridPrefix(dump.grid, s.gridSize);
  const order = s.sequential ? timestepOrder(g.grid, s.sequential.orderSeed) : [];
  // per image: the errors the posterior is computed from, and the true class's position in them
  const rows: { err: number[]; k: number }[] = [];
  for (let i = 0; i < g.n; i++) {
    const y = dump.meta.labels[i];
    if (s.sequential) {
      // every class on the timesteps all were scored on (sharedPrefixPosterior)
      const v = simulateSequential(g, i, s);
      const m = Math.min(...Array.from(v.count));
      const src = s.error === "l2" ? g.l2 : g.l1;
      const err = Array.from({ length: g.classes }, (_, c) => {
        let sum = 0;
        for (let k = 0; k < m; k++) {
          sum += weighted(src[(i * g.classes + c) * g.grid + order[k]], s.weights, order[k]);
        }
        return sum / m;
      });
      rows.push({ err, k: y });
    } else {
      // the classes scored in a staged schedule's last stage (images whose true class left
      // earlier have posterior 0 at any scale and are skipped)
      const v = simulateStaged(g, i, s);
      const finalists = v.survivors.at(-2) ?? Array.from({ length: g.classes }, (_, c) => c);
      const k = finalists.indexOf(y);
      if (k >= 0) rows.push({ err: finalists.map((c) => v.meanError[c]), k });
    }
  }
  const nll = grid.map((scale) => {
    let total = 0;
    for (const { err, k } of rows) {
      const z = err.map((e) => -e * scale);
      const max = Math.max(...z);
      total -= z[k] - max - Math.log(z.reduce((a, v) => a + Math.exp(v - max), 0));
    }
    return total / Math.max(rows.length, 1);
  });
  const best = nll.indexOf(Math.min(...nll));
  return { scale: grid[best], nll: nll[best], grid, nll_per_scale: nll, images: rows.length };
}

function describeStages(s: DCSettings): string {
  return s.stages.map((st) => `${st.nSamples}${st.keep > 1 ? `→keep ${st.keep}` : ""}`).join("→") +
    ` ${s.error}`;
}
