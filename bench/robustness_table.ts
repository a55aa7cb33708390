/**
 * `deno task cli bench table`: the Fashion-MNIST robustness table, one mode per run.
 *
 *   transfer  adversarial examples made on the surrogate bundle, scored on the DC (the paper's
 *             protocol); the surrogate's own white-box accuracy is recorded beside it.
 *   adaptive  adversarial examples made through the DC itself (gradients of −scale·mean error
 *             over fixed timesteps and all classes, via eps_loss_vjp_x), scored on the full DC.
 *
 * Each cell is an (attack, norm, ε). Cells are checkpointed after each one (JSON + the
 * adversarial images as raw float32) so a stopped run resumes where it was. The DC's clean
 * verdicts are computed once; adversarial images are only re-scored where the clean verdict
 * was right (robust = right on both) and the attack changed the image.
 */
import { join } from "node:path";
import { config } from "../config.ts";
import { unetCalls } from "../lib/diffusion_classifier.ts";
import type { DCSettings, DCSettingsOverrides } from "../lib/dc_settings.ts";
import { adversarialSetKey, runShard, type Shard } from "../lib/evaluation/engine.ts";
import { type EvaluationReport, evaluationReport } from "../lib/evaluation/report.ts";
import { evaluationMode, type EvaluationSpec, type SourceSpec } from "../lib/evaluation/spec.ts";
import { modelSet, openSource, openTarget } from "../lib/evaluation/targets.ts";
import { gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { wilson } from "../lib/stats.ts";
import { Progress } from "../cli/progress.ts";
import { attackCost, validateAttack } from "../lib/attacks/registry.ts";
import type { AttackConfig } from "../lib/attacks/config.ts";
import { predictions } from "../lib/attacks/oracle.ts";
import { evenTimesteps } from "../lib/attacks/dc_oracle.ts";
import type { Norm } from "../lib/attacks/projections.ts";
import {
  budgetMonotone,
  type Check,
  doublingStable,
  freshNoiseNotOptimistic,
  singleStepNotStronger,
  unboundedBudget,
} from "../lib/sanity.ts";
import {
  loadAdapter,
  machine,
  openDiffusion,
  openSurrogate,
  settingsFor,
  usageError,
  writeReport,
} from "./common.ts";

export const DEFAULT_CELLS = {
  transfer: "fgsm@linf:0.05,pgd:40@linf:0.05,autoattack:plus@linf:0.05," +
    "fgsm@linf:0.1,pgd:40@linf:0.1,autoattack:plus@linf:0.1," +
    "fgm@l2:0.05,pgd:40@l2:0.05,autoattack:plus@l2:0.05," +
    "fgm@l2:1.5,pgd:40@l2:1.5,autoattack:plus@l2:1.5",
  adaptive: "pgd:10@linf:0.05,apgd-ce:10@linf:0.05,pgd:10@linf:0.1,apgd-ce:10@linf:0.1," +
    "pgd:10@l2:0.05,apgd-ce:10@l2:0.05,pgd:10@l2:1.5,apgd-ce:10@l2:1.5",
};

/** The file a cell's adversarial images are kept in (raw float32, n × C·H·W). */
export const cellFile = (key: string) => `${key.replace(/[^a-z0-9.]+/gi, "_")}.f32`;

export interface CellSpec {
  key: string;
  attack: string;
  param?: string;
  norm: Norm;
  eps: number;
}

/** `name[:param]@norm:eps`, param = steps (PGD/APGD) or version (AutoAttack). */
export function parseCell(s: string): CellSpec {
  const m = /^([a-z-]+)(?::([a-z0-9+]+))?@(linf|l2):([0-9.eE-]+)$/.exec(s.trim());
  if (!m) throw new RangeError(`bad cell '${s}': expected attack[:steps|version]@linf|l2:eps`);
  return { key: s.trim(), attack: m[1], param: m[2], norm: m[3] as Norm, eps: Number(m[4]) };
}

function attackConfig(c: CellSpec, seed: number, k: number): AttackConfig {
  const steps = c.param && /^\d+$/.test(c.param) ? Number(c.param) : undefined;
  const version = c.param && !steps ? c.param as AttackConfig["version"] : undefined;
  return validateAttack(
    { attack: c.attack, norm: c.norm, eps: c.eps, steps, version, seed },
    k,
    1_000_000,
  );
}

interface CellResult {
  key: string;
  attack: AttackConfig;
  n: number;
  dc_robust: number;
  dc_robust_accuracy: number;
  ci95: [number, number];
  source_robust_accuracy: number;
  source_ci95: [number, number];
  max_perturbation: number;
  per_attack?: unknown;
  warnings?: string[];
  attack_seconds: number;
  score_seconds: number;
  /** absent in cells from before adaptive runs skipped the DC's clean errors (= n) */
  attacked_images?: number;
  dc_images_scored: number;
  /** 1 = DC right on clean and adversarial */
  dc_robust_flags: number[];
  source_robust_flags: number[];
  sanity?: Check[];
  /** the evaluation engine's report for this cell (absent in cells from before the engine) */
  report?: EvaluationReport;
  rescored_with_fresh_noise?: { seeds: number[]; images: number; accuracy: number[] };
}

interface State {
  config: Record<string, unknown>;
  clean?: { dc: number[]; surrogate: number[]; dc_seconds: number };
  cells: Record<string, CellResult>;
}

const sum = (a: ArrayLike<number>) => Array.from(a).reduce((s, v) => s + v, 0);

/** The checked command-line options (cli/bench_table.ts declares and validates them). */
export interface TableOptions {
  mode: "transfer" | "adaptive";
  n?: number;
  seed: number;
  cells?: string;
  "attack-timesteps": number;
  "logit-scale": number;
  bundle: string;
  surrogate: string;
  threads: number;
  "sanity-n": number;
  rescore: number;
  "rescore-cells"?: string;
  checkpoint?: string;
  "reuse-adv"?: string;
  adapter?: string;
  /** overrides of the bundle's default DC settings (the table's target) */
  settings?: DCSettingsOverrides;
  json: string;
}

export async function robustnessTable(values: TableOptions, args: readonly string[]) {
  const mode = values.mode;
  const n = values.n ?? (mode === "transfer" ? 512 : 128);
  const seed = values.seed;
  const threads = values.threads;
  const sanityN = Math.min(n, values["sanity-n"]);
  const R = values.rescore;
  let cells: CellSpec[];
  try {
    cells = (values.cells ?? DEFAULT_CELLS[mode]).split(",").map(parseCell);
  } catch (e) {
    usageError((e as Error).message);
  }
  const model = await openDiffusion(values.bundle, threads);
  const surrogate = await openSurrogate(values.surrogate!, threads);
  const K = model.classNames.length;
  const dc: DCSettings = settingsFor(model, values.settings);
  const adapter = values.adapter ? await loadAdapter(values.adapter, model) : undefined;
  const lora = adapter?.lora;
  const timesteps = evenTimesteps(Number(values["attack-timesteps"]), dc.tRange[0], dc.tRange[1]);
  const scale = Number(values["logit-scale"]);
  // One source and one target spec for every cell: the engine (lib/evaluation/engine.ts) runs them.
  const source: SourceSpec = mode === "transfer" ? { kind: "surrogate", bundle: surrogate.id } : {
    kind: "dc",
    bundle: model.id,
    timesteps: Number(values["attack-timesteps"]),
    noise: "fixed",
    logitScale: scale,
    adapter: adapter?.rec.id ?? null,
  };
  const targetSpec = {
    kind: "dc" as const,
    bundle: model.id,
    adapter: adapter?.rec.id ?? null,
    settings: dc,
  };
  const models = modelSet(new Map([[model.id, model]]), new Map([[surrogate.id, surrogate]]));
  const oracle = openSource(source, models, dc, lora);
  const target = openTarget(targetSpec, models, lora);
  const sourceDescribe = mode === "transfer" ? { kind: "surrogate", bundle: surrogate.id } : {
    kind: "dc",
    bundle: model.id,
    timesteps,
    noise: "fixed (one draw per timestep, seed of the DC settings)",
    logit_scale: scale,
    error: dc.error,
    note:
      "logits = −scale × mean error over these timesteps and all classes (no elimination: not differentiable)",
  };

  const test = await loadTest(config.root);
  const subset = seededSubset(test.n, n, seed);
  const set = gather(test, subset);
  const D = set.images.length / n;
  const ckPath = values.checkpoint ?? join(
    config.root,
    "runs",
    `table-${mode}-n${n}-s${seed}${adapter ? `-adapter-${adapter.rec.id.slice(0, 8)}` : ""}`,
  );
  await Deno.mkdir(ckPath, { recursive: true });
  const statePath = join(ckPath, "state.json");
  const state: State = await Deno.readTextFile(statePath).then(JSON.parse).catch(() => ({
    config: {},
    cells: {},
  }));
  const runConfig: Record<string, unknown> = {
    mode,
    n,
    seed,
    dc_bundle: model.id,
    surrogate: surrogate.id,
    dc_settings: dc,
    adapter: adapter?.rec.id ?? null,
    ...(mode === "adaptive" ? { attack_timesteps: timesteps, logit_scale: scale } : {}),
  };
  // A checkpoint made under other settings must not be resumed as if it were this run's
  // (keys an older checkpoint lacks are taken as matching).
  const differs = Object.keys(runConfig).filter((k) =>
    k in state.config && JSON.stringify(state.config[k]) !== JSON.stringify(runConfig[k])
  );
  if (differs.length && Object.keys(state.cells).length) {
    usageError(
      `${ckPath} was made with other settings (${differs.join(", ")}); pass --checkpoint DIR`,
    );
  }
  state.config = runConfig;
  const save = async () => {
    const tmp = statePath + ".tmp";
    await Deno.writeTextFile(tmp, JSON.stringify(state));
    await Deno.rename(tmp, statePath);
  };
  await save(); // the run's settings, so a later run with other settings is refused
  const progress = new Progress(`table ${mode}`);
  const log = (m: string) => progress.log(m);

  const surrogateLabels = async (x: Float32Array, m: number) =>
    Array.from(predictions(await surrogate.logits(x, m), m, K));

  if (!state.clean) {
    const t0 = performance.now();
    log(`clean verdicts for ${n} images`);
    state.clean = {
      dc: Array.from(
        await target.predict(set.images, n, progress.callback("clean verdicts", "UNet calls")),
      ),
      surrogate: await surrogateLabels(set.images, n),
      dc_seconds: (performance.now() - t0) / 1000,
    };
    await save();
  }
  const clean = state.clean!;
  const dcClean = clean.dc.map((p, i) => (p === set.labels[i] ? 1 : 0));
  const srcClean = clean.surrogate.map((p, i) => (p === set.labels[i] ? 1 : 0));

  /** Indices among the first m that the DC gets right clean: only they can be robust. */
  const cleanRight = (m: number) =>
    Array.from({ length: m }, (_, i) => i).filter((i) => dcClean[i]);

  async function sourceRobust(xAdv: Float32Array, m: number): Promise<number[]> {
    const z = await oracle.logits(xAdv, m);
    const p = predictions(z, m, K);
    const c = mode === "transfer" ? srcClean : dcClean;
    return Array.from(p, (v, i) => (v === set.labels[i] && c[i] ? 1 : 0));
  }
  /**
   * One cell (or a sanity run on the first m images) through the evaluation engine. Adaptive
   * attacks run only on the images the DC gets right clean: the others count as not robust
   * whatever the attack does, and each DC gradient costs timesteps × classes UNet rows.
   * Transfer attacks run on every image (the surrogate's examples do not depend on the target).
   * The DC re-scores only right-clean images whose example changed (the clean verdicts are
   * computed once per run).
   */
  const specFor = (cfg: AttackConfig): EvaluationSpec => {
    const base = { attack: cfg, source, dataset: { name: "fashion-mnist-test" as const, n, seed } };
    return {
      ...base,
      target: targetSpec,
      setKey: adversarialSetKey(base),
      mode: evaluationMode(source, targetSpec),
      attackScope: mode === "adaptive" ? "clean-correct" : "all",
    };
  };
  /** Count and ETA per phase of a cell (attack in image evaluations, scoring in UNet calls). */
  const onProgress = (what: string) => {
    let phase = "";
    return (name: string, done: number, total: number, unit: string) => {
      if (name !== phase) progress.start(`${what}: ${(phase = name)}`, total, unit);
      progress.update(done, total);
    };
  };
  const shardOf = (cfg: AttackConfig, m: number, adv?: Float32Array, what = ""): Shard => ({
    spec: specFor(cfg),
    indices: Array.from(subset.subarray(0, m)),
    images: { images: set.images.subarray(0, m * D), labels: set.labels.subarray(0, m), n: m },
    shape: model.imageShape,
    dc,
    lora,
    adv,
    cleanPred: Int32Array.from(clean.dc.slice(0, m)),
    score: "changed",
    onProgress: onProgress(what || `${cfg.attack} ε=${cfg.eps} (${m} images)`),
  });
  const robustFlags = (items: { label: number; cleanPred: number; advPred: number }[]) =>
    items.map((it) => (it.cleanPred === it.label && it.advPred === it.label ? 1 : 0));

  for (const c of cells) {
    if (state.cells[c.key]) {
      log(`${c.key}: done (checkpoint)`);
      continue;
    }
    const cfg = attackConfig(c, seed, K);
    log(`${c.key}: attacking ${n} images`);
    // Transferred examples do not depend on the target: reuse another run's (same n, seed, cell).
    const reuse = values["reuse-adv"] && mode === "transfer"
      ? await Deno.readFile(join(values["reuse-adv"], cellFile(c.key))).catch(() => null)
      : null;
    const run = await runShard(
      shardOf(cfg, n, reuse ? new Float32Array(reuse.buffer) : undefined),
      models,
    );
    if (run.xAdv.length !== set.images.length) {
      throw new Error(`${c.key}: wrong adversarial set size`);
    }
    const maxPert = Math.max(0, ...run.items.map((it) => it.dist ?? 0));
    const src = await sourceRobust(run.xAdv, n);
    const flags = robustFlags(run.items);
    const r = sum(flags);
    log(`${c.key}: source robust ${sum(src)}/${n}; DC robust ${r}/${n}`);
    const checks: Check[] = [{
      name: "perturbation within ε",
      ok: maxPert <= c.eps * (1 + 1e-5) + 1e-6,
      detail: `max ${c.norm} distance ${maxPert.toPrecision(4)} (ε = ${c.eps})`,
    }];
    const cell: CellResult = {
      key: c.key,
      attack: cfg,
      n,
      dc_robust: r,
      dc_robust_accuracy: r / n,
      ci95: wilson(r, n),
      source_robust_accuracy: sum(src) / n,
      source_ci95: wilson(sum(src), n),
      max_perturbation: maxPert,
      per_attack: run.attackDetail,
      warnings: reuse ? ["reused"] : run.warnings,
      attack_seconds: run.attackSeconds,
      attacked_images: mode === "adaptive" ? sum(dcClean) : n,
      score_seconds: run.computeMs / 1000 - run.attackSeconds,
      dc_images_scored: run.scored,
      dc_robust_flags: flags,
      source_robust_flags: src,
      sanity: checks,
      // the same report shape as the service's evaluation job and the CLI's evaluate
      report: evaluationReport(specFor(cfg), [run], {
        complete: true,
        // cross-cell checks are the table's own (below); per-run checks still run
        siblings: [],
        imageSize: D,
        id: c.key,
      }),
    };
    // Spec §7: doubling the iterations must not change per-point outcomes beyond noise.
    if (cfg.steps && cfg.steps > 1 && c.attack !== "autoattack") {
      const dbl = await runShard(shardOf({ ...cfg, steps: cfg.steps * 2 }, sanityN), models);
      const f2 = robustFlags(dbl.items);
      checks.push({
        ...doublingStable(Uint8Array.from(flags.slice(0, sanityN)), Uint8Array.from(f2)),
        name: `doubling steps ${cfg.steps} → ${cfg.steps * 2} (first ${sanityN} images)`,
      });
    }
    await Deno.writeFile(
      join(ckPath, cellFile(c.key)),
      new Uint8Array(run.xAdv.buffer, run.xAdv.byteOffset, run.xAdv.byteLength),
    );
    state.cells[c.key] = cell;
    await save();
    log(`${c.key}: done (${run.attackSeconds.toFixed(0)} s attack)`);
  }

  // Spec §7, stochastic models: re-score each cell's first sanity-n adversarial points with R
  // fresh noise draws (a pass of its own, so finished cells can be re-scored later).
  const rescoreKeys = values["rescore-cells"]?.split(",").map((k) => k.trim());
  for (const c of R > 0 ? cells.filter((c) => !rescoreKeys || rescoreKeys.includes(c.key)) : []) {
    const cell = state.cells[c.key];
    if (cell.rescored_with_fresh_noise?.accuracy.length === R) continue;
    const xAdv = new Float32Array((await Deno.readFile(join(ckPath, cellFile(c.key)))).buffer);
    const m = sanityN;
    log(`${c.key}: re-scoring ${m} adversarial points with ${R} fresh noise draws`);
    const seeds = Array.from({ length: R }, (_, j) => dc.seed + 1 + j);
    // Only images right on the clean image can count as robust: score just those.
    const idx = cleanRight(m);
    const x = gather({ images: xAdv, labels: set.labels, n }, Int32Array.from(idx)).images;
    const accuracy: number[] = [];
    for (const s of seeds) {
      const labels = await target.predictWithDraw!(x, idx.length, s - dc.seed);
      accuracy.push(sum(Array.from(labels, (p, r) => (p === set.labels[idx[r]] ? 1 : 0))) / m);
    }
    cell.rescored_with_fresh_noise = { seeds, images: m, accuracy };
    cell.sanity = (cell.sanity ?? []).filter((k) => !k.name.startsWith("fixed-noise accuracy"));
    cell.sanity.push(
      freshNoiseNotOptimistic(sum(cell.dc_robust_flags.slice(0, m)) / m, accuracy, m),
    );
    await save();
  }

  // Spec §7 across cells: an unbounded budget reaches 0% (white-box on the source for transfer,
  // through the DC for adaptive), accuracy non-increasing in ε, FGSM never beats PGD.
  const global: Check[] = [];
  if (!state.cells["unbounded"]) {
    const cfg = validateAttack(
      { attack: "pgd", norm: "linf", eps: 1, steps: 10, seed },
      K,
      1_000_000,
    );
    const out = await runShard(shardOf(cfg, sanityN), models);
    const src = await sourceRobust(out.xAdv, sanityN);
    const flags = robustFlags(out.items);
    state.cells["unbounded"] = {
      key: "unbounded",
      attack: cfg,
      n: sanityN,
      dc_robust: sum(flags),
      dc_robust_accuracy: sum(flags) / sanityN,
      ci95: wilson(sum(flags), sanityN),
      source_robust_accuracy: sum(src) / sanityN,
      source_ci95: wilson(sum(src), sanityN),
      max_perturbation: 1,
      attack_seconds: 0,
      score_seconds: 0,
      dc_images_scored: sanityN,
      dc_robust_flags: flags,
      source_robust_flags: src,
    };
    await save();
  }
  const u = state.cells["unbounded"];
  global.push(
    mode === "adaptive"
      ? unboundedBudget(u.dc_robust_accuracy, 0, `adaptive PGD-10 Linf ε = 1 on the DC`)
      : unboundedBudget(
        u.source_robust_accuracy,
        0,
        `white-box PGD-10 Linf ε = 1 on the surrogate`,
      ),
  );
  const done = cells.map((c) => ({ c, r: state.cells[c.key] }));
  for (const name of new Set(cells.map((c) => `${c.attack}:${c.param ?? ""}@${c.norm}`))) {
    const sweep = done.filter(({ c }) => `${c.attack}:${c.param ?? ""}@${c.norm}` === name);
    if (sweep.length > 1) {
      global.push({
        ...budgetMonotone(sweep.map(({ c, r }) => ({ eps: c.eps, robust: r.dc_robust_accuracy }))),
        name: `${name}: DC accuracy non-increasing in ε`,
      });
    }
  }
  for (const { c, r } of done.filter(({ c }) => c.attack === "fgsm" || c.attack === "fgm")) {
    const it = done.find(({ c: d }) => d.attack === "pgd" && d.norm === c.norm && d.eps === c.eps);
    if (it) {
      global.push({
        ...singleStepNotStronger(
          r.dc_robust_accuracy,
          it.r.dc_robust_accuracy,
          1.96 * Math.sqrt(0.25 / n),
        ),
        name: `${c.norm} ε=${c.eps}: single step not stronger than PGD (DC, within 1.96σ)`,
      });
    }
  }
  /** The attack's budget per image (an upper bound: AutoAttack stops on broken points). */
  const evaluationsPerImage = (cfg: AttackConfig) => {
    const calls = attackCost(cfg, K);
    return mode === "transfer"
      ? { surrogate_calls: calls }
      : { dc_gradient_calls: calls, unet_rows: calls * timesteps.length * K };
  };
  const dcAcc = sum(dcClean) / n;
  const report = {
    benchmark: "robustness-table",
    mode,
    command: `deno task cli bench table ${args.join(" ")}`,
    what: mode === "transfer"
      ? "adversarial examples generated on the surrogate bundle and TRANSFERRED to the diffusion classifier (the paper's protocol)"
      : "ADAPTIVE: adversarial examples generated through the diffusion classifier itself, scored on the full DC",
    n,
    seed,
    subset:
      "first n of lib/fashion_mnist.ts seededSubset(10000, n, seed), Fashion-MNIST test split",
    robust_definition: "DC right on the clean image and on its adversarial example",
    attack_scope: mode === "transfer"
      ? "every image of the subset is attacked on the surrogate"
      : "images the DC gets wrong clean count as not robust and are not attacked (attacked_images per cell; cells without it attacked all n)",
    source: sourceDescribe,
    target: {
      kind: "dc",
      bundle: model.id,
      adapter: adapter
        ? { id: adapter.rec.id, step: adapter.rec.step, run: adapter.rec.jobId }
        : null,
      settings: dc,
      unet_calls_per_image: unetCalls(dc, K),
    },
    clean: {
      dc_accuracy: dcAcc,
      dc_ci95: wilson(sum(dcClean), n),
      surrogate_accuracy: sum(srcClean) / n,
      surrogate_ci95: wilson(sum(srcClean), n),
      dc_seconds: clean.dc_seconds,
      dc_correct_flags: dcClean,
    },
    cells: done.map(({ r }) => ({ ...r, evaluations_per_image: evaluationsPerImage(r.attack) })),
    unbounded: u,
    sanity: global,
    machine: machine(),
  };
  await writeReport(values.json!, report, 1);
}
