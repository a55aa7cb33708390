/**
 * `deno task cli bench dc-exact`: the exact white-box attack on the diffusion classifier, with
 * its budget-saturation curve (issue 13).
 *
 * The default DC is a deterministic function of (image, bundle, adapter, settings); the
 * attacker knows all of it. So the gradient oracle is the classifier's *own* estimate
 * (`ownPairsOracle`): its grid timesteps, its noise draws (seed of the settings), its error
 * norm and weights — `pairs` of its grid pairs per call, a fresh uniform subset each time, an
 * unbiased estimate of the full-grid mean it decides on. Every candidate an attack returns
 * (its best-loss point and its last misclassified iterate) is checked on the real classifier:
 * robust = right clean and right on every candidate of every attack (worst case per image).
 *
 * Stages, each on the images still robust: the transferred examples (PGD-40 and APGD-CE-100 on
 * the surrogate, the paper's protocol), then for each attack (APGD-CE, APGD-DLR) one run
 * started from each transferred example and `random-restarts` from random points.
 *
 * `--noise fresh` is the secret-seed deployment: the classifier's seed is drawn per request
 * from a server secret, so the attacker averages over fresh draws (EOT, AutoAttack `rand`
 * style) and every verdict — clean and adversarial — is taken with a draw the attacker never
 * saw (the settings' seed + 1).
 *
 * Budget levels multiply the iterations (×1, ×2, …): each level is an independent run, and a
 * figure counts only where the next level (twice the budget) stays inside its interval.
 * State is checkpointed after every stage, so a stopped run resumes.
 *
 * Images run in chunks (`chunk`, 32 by default), each chunk one batch with its own state file
 * (`state.json` for the first, `state@<first image>.json` after it), so n can grow later: a
 * run at n = 64 reuses the chunk a run at n = 32 finished and attacks only the new images. The
 * attacks' subset and start draws depend on the chunk's first image (the first chunk's are those
 * of a run before chunks), never on how many chunks follow it; the surrogate's transferred
 * examples are per image and the same in any chunk.
 */
import { join } from "node:path";
import { config } from "../config.ts";
import { type ApgdLoss, apgdSingleRun } from "../lib/attacks/apgd.ts";
import { ownPairsOracle } from "../lib/attacks/dc_oracle.ts";
import { classifierOracle, gatherRows } from "../lib/attacks/oracle.ts";
import type { Norm } from "../lib/attacks/projections.ts";
import { runAttack, validateAttack } from "../lib/attacks/registry.ts";
import type { DCSettings, DCSettingsOverrides } from "../lib/dc_settings.ts";
import { modelSet, openTarget } from "../lib/evaluation/targets.ts";
import {
  gather,
  type LabelledImages,
  loadTest,
  loadTrainSplit,
  seededSubset,
} from "../lib/fashion_mnist.ts";
import type { Classifier, DiffusionModel, LoraTensors } from "../lib/model.ts";
import { PortableRandom } from "../lib/rng.ts";
import { wilson } from "../lib/stats.ts";
import { Progress } from "../cli/progress.ts";
import {
  loadAdapter,
  machine,
  openDiffusion,
  openSurrogate,
  settingsFor,
  usageError,
  writeReport,
} from "./common.ts";

export interface ExactOptions {
  n: number;
  seed: number;
  norm: Norm;
  eps: number;
  noise: "fixed" | "fresh";
  /** the deployment: default fixed for fixed noise, secret for fresh noise */
  target?: "fixed" | "secret";
  attacks: string[];
  iters: number;
  pairs: number;
  eot: number;
  levels: number[];
  "random-restarts": number;
  /** random starts only (a sanity check that does not begin at a point already misclassified) */
  "no-transfer-starts"?: boolean;
  "logit-scale": number;
  bundle?: string;
  surrogate: string;
  adapter?: string;
  settings?: DCSettingsOverrides;
  threads: number;
  /** images from the test split (reported numbers) or the validation split (choices) */
  split: "test" | "validation";
  checkpoint?: string;
  /** images per chunk (one batch and one state file each) */
  chunk: number;
  json: string;
}

const LOSSES: Record<string, ApgdLoss> = { "apgd-ce": "ce", "apgd-dlr": "dlr" };
/** the transfer attacks made on the surrogate (the paper's PGD-40, and APGD-CE at 100) */
/** The paper's transferred examples (surrogate PGD-40 and APGD-CE-100). */
export const TRANSFER = [{ attack: "pgd", steps: 40 }, { attack: "apgd-ce", steps: 100 }];

interface StageRecord {
  name: string;
  /** images attacked in this stage (robust before it) */
  attacked: number;
  /** robust flags over the n images after this stage */
  robust: number[];
  unetCallsPerImage: number;
  seconds: number;
}

export interface State {
  config: Record<string, unknown>;
  /** the chunk size it was made with (absent: a state from before chunks, one batch) */
  chunk?: number;
  clean?: number[];
  transfer?: StageRecord[];
  levels: Record<string, StageRecord[]>;
}

const count = (f: ArrayLike<number>) => Array.from(f).reduce((s, v) => s + v, 0);

/** One exact-attack run: the models, the images, the budget, where its state lives. */
export interface ExactRun {
  model: DiffusionModel;
  surrogate: Classifier;
  dc: DCSettings;
  lora?: LoraTensors;
  adapterId: string | null;
  set: LabelledImages;
  seed: number;
  norm: Norm;
  eps: number;
  noise: "fixed" | "fresh";
  attacks: string[];
  iters: number;
  pairs: number;
  eot: number;
  levels: number[];
  randomRestarts: number;
  /** start a run from each transferred example (default) — off leaves the random starts only */
  transferStarts?: boolean;
  logitScale: number;
  checkpoint: string;
  /** images per chunk (one batch, one state file); default 32 */
  chunk?: number;
  log: (m: string) => void;
}

/** Images per chunk unless told otherwise (the size every recorded run used). */
export const DEFAULT_CHUNK = 32;

/** One chunk: `set` holds its images, `offset` is its first image's position in the run. */
type ChunkRun = ExactRun & { offset: number };

/**
 * The run's settings as recorded (a checkpoint made under others is refused). For a chunk, n
 * is its image count and `offset` its first image (absent for the first chunk, whose record
 * predates chunks).
 */
export function exactConfig(r: ExactRun & { offset?: number }) {
  return {
    n: r.set.n,
    ...(r.offset ? { offset: r.offset } : {}),
    seed: r.seed,
    norm: r.norm,
    eps: r.eps,
    noise: r.noise,
    attacks: r.attacks,
    iters: r.iters,
    pairs: r.pairs,
    eot: r.eot,
    random_restarts: r.randomRestarts,
    // recorded only when off, so states made before the option still match
    ...(r.transferStarts === false ? { transfer_starts: false } : {}),
    logit_scale: r.logitScale,
    bundle: r.model.id,
    surrogate: r.surrogate.id,
    adapter: r.adapterId,
    dc_settings: r.dc,
  };
}

/** Run (or resume) the stages of every level; the state holds every robust flag. */
export async function runExact(r: ExactRun): Promise<State> {
  for (const a of r.attacks) {
    if (!LOSSES[a]) usageError(`unknown attack '${a}': one of ${Object.keys(LOSSES).join(", ")}`);
  }
  if (r.pairs > r.dc.gridSize) usageError(`--pairs ${r.pairs} > the grid's ${r.dc.gridSize} pairs`);
  if (r.transferStarts === false && r.randomRestarts < 1) {
    usageError("--no-transfer-starts needs --random-restarts ≥ 1 (or the attack has no start)");
  }
  await Deno.mkdir(r.checkpoint, { recursive: true });
  const release = await lockFolder(r.checkpoint, r.log);
  try {
    const size = r.chunk ?? DEFAULT_CHUNK;
    const D = r.set.images.length / r.set.n;
    const chunks: State[] = [];
    for (let a = 0; a < r.set.n; a += size) {
      const b = Math.min(a + size, r.set.n);
      if (r.set.n > size) {
        r.log(`chunk ${a / size + 1}/${Math.ceil(r.set.n / size)}: images ${a}–${b - 1}`);
      }
      const set = {
        images: r.set.images.subarray(a * D, b * D),
        labels: r.set.labels.subarray(a, b),
        n: b - a,
      };
      chunks.push(await runChunk({ ...r, set, offset: a }));
    }
    return mergeChunks(chunks);
  } finally {
    await release();
  }
}

/**
 * Whether every chunk of a run is in its folder, made with the run's settings and finished at
 * every level (a report can then read it without attacking anything).
 */
export async function exactRunFinished(r: ExactRun): Promise<boolean> {
  const size = r.chunk ?? DEFAULT_CHUNK;
  const stages = r.attacks.length *
    ((r.transferStarts !== false ? TRANSFER.length : 0) + r.randomRestarts);
  for (let a = 0; a < r.set.n; a += size) {
    const n = Math.min(a + size, r.set.n) - a;
    const st: State | null = await Deno.readTextFile(join(r.checkpoint, chunkFile(a)))
      .then(JSON.parse).catch(() => null);
    const want = exactConfig({ ...r, set: { ...r.set, n }, offset: a });
    if (!st?.clean || !st.transfer || JSON.stringify(st.config) !== JSON.stringify(want)) {
      return false;
    }
    if (!r.levels.every((l) => st.levels[`x${l}`]?.length === stages)) return false;
  }
  return true;
}

/** A chunk's state file: the first chunk keeps the name every run before chunks used. */
export const chunkFile = (offset: number) => offset ? `state@${offset}.json` : "state.json";

/**
 * The chunks' states as one: flags concatenated in image order, seconds summed, UNet calls per
 * attacked image averaged over the attacked images. A level counts only where every chunk ran
 * it (an extra level one chunk ran alone is left out of the merged state).
 */
export function mergeChunks(chunks: State[]): State {
  if (chunks.length === 1) return chunks[0];
  const stages = (lists: StageRecord[][]): StageRecord[] =>
    lists[0].map((first, k) => {
      const all = lists.map((l) => l[k]);
      const attacked = all.reduce((s, x) => s + x.attacked, 0);
      return {
        name: first.name,
        attacked,
        robust: all.flatMap((x) => x.robust),
        unetCallsPerImage: attacked
          ? all.reduce((s, x) => s + x.unetCallsPerImage * x.attacked, 0) / attacked
          : 0,
        seconds: all.reduce((s, x) => s + x.seconds, 0),
      };
    });
  const levels: Record<string, StageRecord[]> = {};
  for (const key of Object.keys(chunks[0].levels)) {
    const lists = chunks.map((c) => c.levels[key]);
    const len = lists[0].length;
    if (lists.every((l) => l?.length === len)) levels[key] = stages(lists);
  }
  const { offset: _, ...config } = chunks[0].config;
  return {
    config: { ...config, n: chunks.reduce((s, c) => s + c.clean!.length, 0) },
    clean: chunks.flatMap((c) => c.clean!),
    transfer: stages(chunks.map((c) => c.transfer!)),
    levels,
  };
}

/**
 * One process per state folder (a study and a `bench dc-exact` run may share one): wait while
 * another live process holds it; a lock left by a dead process is taken over.
 */
async function lockFolder(dir: string, log: (m: string) => void) {
  const path = join(dir, "lock");
  for (let said = false;;) {
    try {
      await Deno.writeTextFile(path, String(Deno.pid), { createNew: true });
      return () => Deno.remove(path).catch(() => {});
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      const pid = Number(await Deno.readTextFile(path).catch(() => ""));
      const alive = pid > 0 && await Deno.stat(`/proc/${pid}`).then(() => true, () => false);
      if (!alive) {
        await Deno.remove(path).catch(() => {});
        continue;
      }
      if (!said) log(`${dir} is in use by process ${pid}; waiting`);
      said = true;
      await new Promise((r) => setTimeout(r, 30_000));
    }
  }
}

async function runChunk(r: ChunkRun): Promise<State> {
  // a secret-seed target's verdicts use a draw the attack never sees (lib/evaluation/targets.ts)
  const { model, surrogate, dc, lora, set, log } = r;
  const K = model.classNames.length;
  const models = modelSet(new Map([[model.id, model]]), new Map([[surrogate.id, surrogate]]));
  const target = openTarget(
    { kind: "dc", bundle: model.id, adapter: r.adapterId, settings: dc },
    models,
    lora,
  );
  const verdicts = (x: Float32Array, m: number) => target.predict(x, m);
  const n = set.n;
  const D = set.images.length / n;
  const shape = model.imageShape;
  const statePath = join(r.checkpoint, chunkFile(r.offset));
  const fresh = (): State => ({ config: {}, levels: {} });
  let state: State = await Deno.readTextFile(statePath).then(JSON.parse).catch(fresh);
  const runConfig = exactConfig(r);
  if (state.clean && JSON.stringify(state.config) !== JSON.stringify(runConfig)) {
    const sameBut = (c: Record<string, unknown>) => JSON.stringify({ ...c, n: 0 });
    const had = Number(state.config.n);
    if (sameBut(state.config) !== sameBut(runConfig)) {
      usageError(`${r.checkpoint} was made with other settings; pass another checkpoint folder`);
    }
    // only the last, partial chunk of a smaller run may grow: nothing finished is thrown away (a
    // state from before chunks records no chunk size: it was one batch of its n images)
    const made = state.chunk ?? had;
    if (made !== (r.chunk ?? DEFAULT_CHUNK)) {
      usageError(
        `${statePath} was made in chunks of ${made}: pass --chunk ${made} (or another folder)`,
      );
    }
    if (had > n) {
      usageError(
        `${statePath} holds ${had} images; a smaller --n must end where a chunk ends (or use another folder)`,
      );
    }
    log(`${statePath} holds ${had} images, not ${n}: redoing that chunk`);
    state = fresh();
  }
  state.chunk = r.chunk ?? DEFAULT_CHUNK;
  state.config = runConfig;
  const save = async () => {
    await Deno.writeTextFile(statePath + ".tmp", JSON.stringify(state));
    await Deno.rename(statePath + ".tmp", statePath);
  };

  if (!state.clean) {
    log(`clean verdicts for ${n} images`);
    const p = await verdicts(set.images, n);
    state.clean = Array.from(p, (v, i) => (v === set.labels[i] ? 1 : 0));
    await save();
  }

  /** Check candidates on the real classifier; the images they break leave `robust`. */
  async function check(robust: number[], cands: { idx: number[]; x: Float32Array }[]) {
    const out = robust.slice();
    for (const c of cands) {
      const live = c.idx.map((s, j) => [s, j]).filter(([s]) => out[s]);
      if (!live.length) continue;
      const x = gatherRows(c.x, live.map(([, j]) => j), D);
      const p = await verdicts(x, live.length);
      live.forEach(([s], k) => {
        if (p[k] !== set.labels[s]) out[s] = 0;
      });
    }
    return out;
  }

  // Transferred examples: deterministic, remade on every run (cheap), scored once.
  const sOracle = classifierOracle(surrogate);
  const transferX: Float32Array[] = [];
  for (const t of TRANSFER) {
    const cfg = validateAttack({ ...t, norm: r.norm, eps: r.eps, seed: r.seed }, K, 1e9);
    transferX.push((await runAttack(sOracle, set.images, set.labels, cfg, shape)).xAdv);
  }
  if (!state.transfer) {
    let robust = state.clean.slice();
    state.transfer = [];
    for (const [k, t] of TRANSFER.entries()) {
      const t0 = performance.now();
      const attacked = count(robust);
      const all = Array.from({ length: n }, (_, i) => i);
      robust = await check(robust, [{ idx: all, x: transferX[k] }]);
      state.transfer.push({
        name: `transfer ${t.attack}-${t.steps} (surrogate ${surrogate.id})`,
        attacked,
        robust,
        unetCallsPerImage: 0,
        seconds: (performance.now() - t0) / 1000,
      });
    }
    await save();
  }

  for (const [li, level] of r.levels.entries()) {
    const key = `x${level}`;
    const stages = (state.levels[key] ??= []);
    // adaptive stages start from every image right clean (not only transfer's survivors), so
    // an image broken by transfer alone shows up
    let robust = stages.at(-1)?.robust ?? state.clean.slice();
    const plan: { attack: string; init: number | "random"; r: number }[] = [];
    for (const attack of r.attacks) {
      if (r.transferStarts !== false) {
        TRANSFER.forEach((_, k) => plan.push({ attack, init: k, r: 0 }));
      }
      for (let q = 0; q < r.randomRestarts; q++) plan.push({ attack, init: "random", r: q });
    }
    for (const [si, step] of plan.entries()) {
      if (si < stages.length) continue; // done before a stop
      const idx = [...robust.keys()].filter((s) => robust[s]);
      const t0 = performance.now();
      const name = `${step.attack} ×${level} from ${
        step.init === "random" ? `random start ${step.r + 1}` : `transfer ${step.init + 1}`
      }`;
      let calls = 0;
      if (idx.length) {
        log(`level ×${level}: ${name} on ${idx.length} images`);
        const oracle = ownPairsOracle(model, dc, {
          pairsPerCall: r.pairs,
          scale: r.logitScale,
          noise: r.noise,
          lora,
          subsetSeed: (r.seed * 7919 + li * 104729 + si * 131 + r.offset * 2654435761) >>> 0,
        });
        const res = await apgdSingleRun(
          oracle,
          gatherRows(set.images, idx, D),
          Int32Array.from(idx, (s) => set.labels[s]),
          {
            norm: r.norm,
            eps: r.eps,
            nIter: r.iters * level,
            nRestarts: 1,
            loss: LOSSES[step.attack],
            eotIter: r.eot,
          },
          new PortableRandom(r.seed, (0xe7ac + li * 1000 + si + r.offset * 7_368_787) >>> 0),
          step.init === "random" ? {} : { xInit: gatherRows(transferX[step.init], idx, D) },
        );
        calls = oracle.unetCalls / idx.length;
        // both the best-loss point and the last point the estimate misclassified
        const flagged = idx.map((_, j) => j).filter((j) => !res.acc[j]);
        robust = await check(robust, [
          { idx, x: res.xBest },
          { idx: flagged.map((j) => idx[j]), x: gatherRows(res.xAdvBest, flagged, D) },
        ]);
      }
      stages.push({
        name,
        attacked: idx.length,
        robust,
        unetCallsPerImage: calls,
        seconds: (performance.now() - t0) / 1000,
      });
      await save();
      log(`  robust ${count(robust)}/${n}`);
    }
  }
  return state;
}

/** Each level's figure, the saturation rule, the worst case per image over everything. */
export function exactSummary(
  state: State,
  r: Pick<ExactRun, "iters" | "levels">,
  labels: Int32Array,
) {
  const n = state.clean!.length;
  const fig = (flags: number[]) => {
    const k = count(flags);
    return { robust: k, accuracy: k / n, ci95: wilson(k, n) };
  };
  const afterTransfer = state.transfer!.at(-1)!.robust;
  const levels = r.levels.map((level) => {
    const st = state.levels[`x${level}`];
    return {
      budget_multiplier: level,
      iterations: r.iters * level,
      attack_unet_calls_per_attacked_image: st.reduce((s, x) => s + x.unetCallsPerImage, 0),
      seconds: st.reduce((s, x) => s + x.seconds, 0),
      ...fig(st.at(-1)!.robust),
      stages: st.map(({ robust, ...x }) => ({ ...x, robust_after: count(robust) })),
      note: "adaptive stages only (transfer not counted)",
    };
  });
  // Saturated at level i when level i+1 (twice the budget) lies inside level i's interval.
  let saturatedAt: number | null = null;
  for (let i = 0; i + 1 < levels.length && saturatedAt === null; i++) {
    const [lo, hi] = levels[i].ci95;
    if (levels[i + 1].accuracy >= lo && levels[i + 1].accuracy <= hi) saturatedAt = i + 1;
  }
  const adaptiveRobust = (s: number) =>
    Object.values(state.levels).every((st) => st.at(-1)!.robust[s] === 1);
  const worst = Array.from({ length: n }, (_, s) => adaptiveRobust(s) ? afterTransfer[s] : 0);
  // images the transferred examples break but no adaptive run does (each run started from them)
  const transferOnly = [...afterTransfer.keys()].filter((s) =>
    state.clean![s] && !afterTransfer[s] && adaptiveRobust(s)
  );
  return {
    n,
    clean: fig(state.clean!),
    transfer: state.transfer!.map(({ robust, ...x }) => ({ ...x, ...fig(robust) })),
    levels,
    saturation: saturatedAt === null
      ? {
        saturated: false,
        note: levels.length < 2
          ? "one budget level only: saturation not tested"
          : "no level stayed inside the previous one's interval: not reportable",
      }
      : {
        saturated: true,
        reported_level: levels[saturatedAt].budget_multiplier,
        note: `×${levels[saturatedAt].budget_multiplier} lies inside ×${
          levels[saturatedAt - 1].budget_multiplier
        }'s interval`,
      },
    worst_case: { ...fig(worst), note: "per image over transfer and every level and attack" },
    /** per image: 1 = robust to everything (for paired comparisons) */
    worst_flags: worst,
    broken_only_by_transfer: {
      images: transferOnly.map((s) => ({ position: s, label: labels[s] })),
      note: "every adaptive run on these started from the transferred examples; its estimate " +
        "moved away from a point the real classifier already got wrong",
    },
  };
}

/**
 * runs/dc-exact-…: one folder for every n (chunks let it grow); a folder a run before chunks
 * named with its n (`…-n32-…`) is used while it exists, so its work is not redone.
 */
async function defaultCheckpoint(o: ExactOptions, secret: boolean, n: number, adapter?: string) {
  const name = (nPart: string) =>
    join(
      config.root,
      "runs",
      `dc-exact-${o.noise}-${secret ? "secret" : "fixed"}-${o.norm}-${o.eps}${nPart}-s${o.seed}${
        o.split === "validation" ? "-val" : ""
      }${adapter ? `-adapter-${adapter.slice(0, 8)}` : ""}`,
    );
  const legacy = name(`-n${n}`);
  return await Deno.stat(legacy).then(() => legacy, () => name(""));
}

export async function dcExactAttack(o: ExactOptions, argv: readonly string[]) {
  const model = await openDiffusion(o.bundle, o.threads);
  const surrogate = await openSurrogate(o.surrogate, o.threads);
  // the deployment attacked: fixed seed (the attacker knows the draws) or secret seed (verdicts
  // with a draw the attack never sees); fresh noise attacks a secret seed unless told otherwise
  const secret = (o.target ?? (o.noise === "fresh" ? "secret" : "fixed")) === "secret";
  const dc: DCSettings = {
    ...settingsFor(model, o.settings),
    ...(secret ? { seedMode: "secret" as const } : {}),
  };
  const adapter = o.adapter ? await loadAdapter(o.adapter, model) : undefined;
  const split = o.split === "validation"
    ? await loadTrainSplit(config.root, "validation")
    : await loadTest(config.root);
  const set = gather(split, seededSubset(split.n, o.n, o.seed));
  const progress = new Progress("dc-exact");
  const run: ExactRun = {
    model,
    surrogate,
    dc,
    lora: adapter?.lora,
    adapterId: adapter?.rec.id ?? null,
    set,
    seed: o.seed,
    norm: o.norm,
    eps: o.eps,
    noise: o.noise,
    attacks: o.attacks,
    iters: o.iters,
    pairs: o.pairs,
    eot: o.eot,
    levels: o.levels,
    randomRestarts: o["random-restarts"],
    transferStarts: !o["no-transfer-starts"],
    logitScale: o["logit-scale"],
    checkpoint: o.checkpoint ?? await defaultCheckpoint(o, secret, set.n, adapter?.rec.id),
    chunk: o.chunk,
    log: (m) => progress.log(m),
  };
  const state = await runExact(run);
  const summary = exactSummary(state, run, set.labels);
  const deployment = secret ? "secret seed" : "fixed seed";
  await writeReport(o.json, {
    benchmark: "dc-exact",
    what: o.noise === "fixed"
      ? "exact white-box attack on the deterministic DC (its own timesteps, noise, error, decision grid)"
      : `EOT attack over fresh noise draws on the ${deployment} DC` +
        (secret ? " (verdicts with a draw the attack never sees)" : ""),
    mode: o.noise === "fixed"
      ? "white-box (fixed seed)"
      : secret
      ? "adaptive EOT (secret seed)"
      : "adaptive EOT (fixed seed)",
    deployment,
    command: `deno task cli bench dc-exact ${argv.join(" ")}`,
    split: o.split,
    config: exactConfig(run),
    budget: {
      per_step:
        `${o.pairs} of the classifier's ${dc.gridSize} (t, ε) pairs × ${model.classNames.length} classes, forward + VJP, × EOT ${o.eot}`,
      attacks: o.attacks,
      starts_per_attack: `${o["no-transfer-starts"] ? 0 : TRANSFER.length} transferred examples + ${
        o["random-restarts"]
      } random`,
      batches: `images in chunks of ${o.chunk}, each chunk one batch (its own subset draws)`,
    },
    ...summary,
    machine: machine(),
  });
  progress.end();
}
