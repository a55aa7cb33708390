/**
 * `deno task cli bench tm-study`: Truth Maximization tested for real (issue 13). Every
 * configuration of a study file (LoRA rank via the bundle, learning rate, steps, the training
 * attack's ε, and the source of the training examples) is trained on a pool of adversarial
 * training images, and every checkpoint is scored on validation *and* test under transfer (so
 * the curve has a test point at each checkpoint). Then:
 *
 *   1. each configuration's best checkpoint (validation, transfer) is attacked with the exact
 *      white-box attack (bench/dc_exact.ts) on validation images: the configuration with the
 *      highest worst-case robust accuracy there is chosen — validation only;
 *   2. the chosen adapter and the plain DC are attacked the same way on test images, and
 *      compared per image (paired sign test on the worst case).
 *
 * Sources of training examples: "transfer" (APGD-CE on the surrogate: the paper's kind) and
 * "adaptive" (APGD-CE through the DC's own estimate, `ownPairsOracle`, on the base model:
 * adversarial Truth Maximization with a pool made once). Pools, checkpoints and every attack's
 * state live under runs/tm-study/, so a stopped study resumes where it was.
 */
import { join } from "node:path";
import { config } from "../config.ts";
import { ownPairsOracle } from "../lib/attacks/dc_oracle.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import type { Norm } from "../lib/attacks/projections.ts";
import { runAttack, validateAttack } from "../lib/attacks/registry.ts";
import {
  gather,
  type LabelledImages,
  loadTest,
  loadTrainSplit,
  seededSubset,
} from "../lib/fashion_mnist.ts";
import { runFinetune, scoreAdapter } from "../lib/finetune.ts";
import type { DiffusionModel } from "../lib/model.ts";
import { wilson } from "../lib/stats.ts";
import { signTestP } from "../lib/sanity.ts";
import { initState, packState, PAPER_TM, type TMState, unpackState } from "../lib/truth_max.ts";
import { Progress } from "../cli/progress.ts";
import { type ExactRun, exactRunFinished, exactSummary, runExact } from "./dc_exact.ts";
import {
  machine,
  openDiffusion,
  openSurrogate,
  settingsFor,
  usageError,
  writeReport,
} from "./common.ts";
import type { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import type { DCSettingsOverrides } from "../lib/dc_settings.ts";

export interface StudyConfig {
  name: string;
  /** a diffusion bundle name or folder (the LoRA rank is the bundle's) */
  bundle: string;
  lr: number;
  steps: number;
  /** the training attack's Linf ε */
  eps: number;
  source: "transfer" | "adaptive";
  /** false: not attacked with the exact attack on validation (say why in `note`) */
  exactValidation?: boolean;
  note?: string;
}

export interface StudyFile {
  pool: number;
  valN: number;
  testN: number;
  checkpoints: number[];
  /** the threat model every figure is measured under */
  norm: Norm;
  eps: number;
  /** the exact white-box attack used to choose (validation) and to report (test) */
  exact: {
    n: number;
    iters: number;
    pairs: number;
    attacks: string[];
    levels: number[];
    /** the plain DC's test run's state folder (share it with a `bench dc-exact` run) */
    dcCheckpoint?: string;
  };
  configs: StudyConfig[];
  /** DC settings over the default bundle's (absent: the bundle's own, as the service's default) */
  dc?: DCSettingsOverrides;
}

export interface StudyOptions {
  study: string;
  threads: number;
  /** state folder (default runs/tm-study) */
  state?: string;
  /** only run the test attack on this configuration's best checkpoint */
  "test-config"?: string;
  /** only run the choosing attack on test images for this configuration (or `dc`) */
  "test-choose"?: string;
  /** the study table as Markdown (every configuration, validation and test) */
  md?: string;
  json: string;
}

interface CheckpointRow {
  step: number;
  loss: number;
  validation: { clean: number; transfer_robust: number };
  test: { clean: number; transfer_robust: number };
}

interface StudyState {
  runs: Record<string, {
    checkpoints: CheckpointRow[];
    seconds: number;
    secondsNote?: string;
    /** the study's DC overrides it was trained and scored under (absent: none) */
    dc?: DCSettingsOverrides | null;
  }>;
  /** the plain DC on the checkpoint sets (the study table's first row), under `dc` */
  base?: {
    dc: DCSettingsOverrides | null;
    validation: { clean: number; transfer_robust: number };
    test: { clean: number; transfer_robust: number };
  };
}

const f32 = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export async function tmStudy(o: StudyOptions, argv: readonly string[]) {
  const study: StudyFile = JSON.parse(await Deno.readTextFile(o.study));
  const root = o.state ?? join(config.root, "runs", "tm-study");
  await Deno.mkdir(root, { recursive: true });
  const statePath = join(root, "state.json");
  const state: StudyState = await Deno.readTextFile(statePath).then(JSON.parse).catch(() => ({
    runs: {},
  }));
  const save = () => Deno.writeTextFile(statePath, JSON.stringify(state));
  const progress = new Progress("tm-study");
  const log = (m: string) => progress.log(m);
  if (o["test-config"] && o["test-choose"]) usageError("--test-config or --test-choose, not both");
  /** a process that only runs one test attack: it never trains (the main process does) */
  const testOnly = o["test-config"] ?? o["test-choose"];
  if (testOnly !== undefined && o.md) usageError("--md writes the study table: the full run only");
  const dcKey = JSON.stringify(study.dc ?? null);

  const surrogate = await openSurrogate(config.defaultSurrogate, o.threads);
  const models = new Map<string, OnnxDiffusionModel>();
  const open = async (b: string) => {
    if (!models.has(b)) models.set(b, await openDiffusion(b, o.threads));
    return models.get(b)!;
  };
  const base = await open(config.defaultBundle);
  const dc = settingsFor(base, study.dc);
  const K = base.classNames.length;
  const shape = base.imageShape;
  const D = shape.channels * shape.height * shape.width;
  const sOracle = classifierOracle(surrogate);
  const transferAttack = (eps: number, seed: number) =>
    validateAttack({ attack: "apgd-ce", norm: study.norm, eps, seed }, K, 1e9);

  // Validation and test sets with their transferred examples (the checkpoint curve's attack).
  const mkSet = async (split: LabelledImages, n: number) => {
    const set = gather(split, seededSubset(split.n, n, 0));
    const xAdv =
      (await runAttack(sOracle, set.images, set.labels, transferAttack(study.eps, 0), shape))
        .xAdv;
    return { ...set, xAdv };
  };
  const valSplit = await loadTrainSplit(config.root, "validation");
  const testSplit = await loadTest(config.root);
  const val = await mkSet(valSplit, study.valN);
  const test = await mkSet(testSplit, study.testN);

  // Training pools: made once per (source, ε), shared by every configuration.
  const train = await loadTrainSplit(config.root, "train");
  const poolSet = gather(train, seededSubset(train.n, study.pool, 1));
  async function pool(source: StudyConfig["source"], eps: number): Promise<LabelledImages> {
    const file = join(root, `pool-${source}-${study.norm}-${eps}-P${study.pool}.f32`);
    const have = await Deno.readFile(file).catch(() => null);
    if (have) return { ...poolSet, images: new Float32Array(have.slice().buffer) };
    log(`making the ${source} pool (${study.pool} training images, ε ${eps})`);
    const images = new Float32Array(poolSet.images.length);
    const chunk = source === "transfer" ? 256 : 16;
    for (let i = 0; i < poolSet.n; i += chunk) {
      const m = Math.min(chunk, poolSet.n - i);
      const x = poolSet.images.subarray(i * D, (i + m) * D);
      const y = poolSet.labels.subarray(i, i + m);
      const oracle = source === "transfer" ? sOracle : ownPairsOracle(base, dc, {
        pairsPerCall: study.exact.pairs,
        scale: 100,
        noise: "fixed",
        subsetSeed: i,
      });
      // adaptive: APGD-CE through the base DC's own estimate, 10 iterations per image
      const cfg = source === "transfer"
        ? transferAttack(eps, i)
        : validateAttack({ attack: "apgd-ce", norm: study.norm, eps, steps: 10, seed: i }, K, 1e9);
      images.set((await runAttack(oracle, x, y, cfg, shape)).xAdv, i * D);
      log(`  pool ${Math.min(i + m, poolSet.n)}/${poolSet.n}`);
    }
    await Deno.writeFile(file, f32(images));
    return { ...poolSet, images };
  }

  // 1. train every configuration; every checkpoint scored on validation and test (transfer).
  for (const c of study.configs) {
    const model = await open(c.bundle);
    const dir = join(root, c.name);
    await Deno.mkdir(dir, { recursive: true });
    const run = (state.runs[c.name] ??= { checkpoints: [], seconds: 0, dc: study.dc ?? null });
    if (JSON.stringify(run.dc ?? null) !== dcKey) {
      usageError(
        `${c.name} in ${root} was trained under DC overrides ${
          JSON.stringify(run.dc ?? null)
        }, not the study's ${dcKey}: pass another --state`,
      );
    }
    const last = run.checkpoints.at(-1);
    if (last?.step === c.steps || testOnly !== undefined) continue;
    const trainPool = await pool(c.source, c.eps);
    let s: TMState = last
      ? unpackState(
        await Deno.readFile(join(dir, `step-${last.step}.bin`)),
        model.loraLayout,
        last.step,
      )
      : initState(model.loraLayout, 0);
    log(`${c.name}: training from step ${s.step} to ${c.steps}`);
    // seconds since the last checkpoint (or the start) are added at each checkpoint
    let since = performance.now();
    s = await runFinetune(
      model,
      sOracle,
      trainPool,
      val,
      {
        hyper: { ...PAPER_TM, lr: c.lr, steps: c.steps },
        seed: 0,
        attack: null, // the pool is already adversarial
        checkpoints: study.checkpoints.filter((k) => k <= c.steps),
        validation: { n: study.valN, seed: 0 },
        dc,
      },
      s,
      {
        onCheckpoint: async (cs, info) => {
          const t = await scoreAdapter(model, dc, test, cs.lora);
          await Deno.writeFile(join(dir, `step-${cs.step}.bin`), packState(cs));
          run.checkpoints.push({
            step: cs.step,
            loss: info.loss,
            validation: {
              clean: info.validation.clean_accuracy,
              transfer_robust: info.validation.robust_accuracy,
            },
            test: { clean: t.clean_accuracy, transfer_robust: t.robust_accuracy },
          });
          const now = performance.now();
          run.seconds += (now - since) / 1000;
          since = now;
          await save();
          log(
            `  step ${cs.step}: val ${info.validation.robust_accuracy.toFixed(3)} test ${
              t.robust_accuracy.toFixed(3)
            } (transfer robust)`,
          );
        },
      },
    );
  }

  // 2. each configuration's best checkpoint (validation, transfer), then the exact attack on
  //    validation images; the configuration with the best worst case there is chosen.
  const best = (c: StudyConfig) =>
    [...state.runs[c.name].checkpoints].sort((a, b) =>
      b.validation.transfer_robust - a.validation.transfer_robust ||
      b.validation.clean - a.validation.clean || a.step - b.step
    )[0];
  const lora = async (c: StudyConfig, model: DiffusionModel, step: number) =>
    unpackState(
      await Deno.readFile(join(root, c.name, `step-${step}.bin`)),
      model.loraLayout,
      step,
    ).lora;
  const exactRun = (
    model: OnnxDiffusionModel,
    set: LabelledImages,
    lo: ExactRun["lora"],
    id: string | null,
    dir: string,
    levels: number[],
    attacks: string[],
  ): ExactRun => ({
    model,
    surrogate,
    dc,
    lora: lo,
    adapterId: id,
    set,
    seed: 0,
    norm: study.norm,
    eps: study.eps,
    noise: "fixed",
    attacks,
    iters: study.exact.iters,
    pairs: study.exact.pairs,
    eot: 1,
    levels,
    randomRestarts: 0,
    logitScale: 100,
    checkpoint: dir.startsWith("/") ? dir : join(root, dir),
    log,
  });
  const summarize = async (r: ExactRun) => exactSummary(await runExact(r), r, r.set.labels);
  const valExact = gather(valSplit, seededSubset(valSplit.n, study.exact.n, 0));
  const testExact = gather(testSplit, seededSubset(testSplit.n, study.exact.n, 0));
  /**
   * The choosing attack (APGD-CE ×1 from each transferred example) on the test images: the
   * study table's test column, the same attack as its validation column. `c` undefined: the DC.
   */
  const testChoose = async (c: StudyConfig | undefined) => {
    const m = c ? await open(c.bundle) : base;
    const b = c ? best(c) : undefined;
    const r = exactRun(
      m,
      testExact,
      c ? await lora(c, m, b!.step) : undefined,
      c ? `${c.name}@${b!.step}` : null,
      c ? `exact-testchoose-${c.name}-${b!.step}` : "exact-testchoose-dc",
      [1],
      ["apgd-ce"],
    );
    return summarize(r);
  };
  /** The full test attack (every attack and level) on a configuration's best checkpoint. */
  const fullTestRun = async (c: StudyConfig) => {
    const m = await open(c.bundle);
    const b = best(c);
    return exactRun(
      m,
      testExact,
      await lora(c, m, b.step),
      `${c.name}@${b.step}`,
      `exact-test-${c.name}-${b.step}`,
      study.exact.levels,
      study.exact.attacks,
    );
  };
  /** A configuration a test-only process may attack: in the study and done training. */
  const configNamed = (name: string) => {
    const c = study.configs.find((c) => c.name === name);
    if (!c) throw new Error(`no configuration '${name}' in ${o.study}`);
    const done = state.runs[c.name]?.checkpoints.at(-1)?.step;
    if (done !== c.steps) {
      usageError(`${c.name} has trained to step ${done ?? 0} of ${c.steps}: run the study first`);
    }
    return c;
  };
  if (o["test-config"]) {
    // only the test attack on one configuration's best checkpoint (a second process can run
    // it while the main one chooses; they share the state folder)
    const c = configNamed(o["test-config"]);
    const b = best(c);
    const { worst_flags: _, ...sum } = await summarize(await fullTestRun(c));
    await writeReport(o.json, {
      benchmark: "tm-study (test attack only)",
      config: c,
      step: b.step,
      ...sum,
    });
    return progress.end();
  }
  if (o["test-choose"]) {
    // only the choosing attack on test for one configuration (a parallel process, as above)
    const name = o["test-choose"];
    const c = name === "dc" ? undefined : configNamed(name);
    if (c?.exactValidation === false) {
      usageError(`${c.name} is not attacked in this study (exactValidation: false)`);
    }
    const { worst_flags: _, ...sum } = await testChoose(c);
    await writeReport(o.json, {
      benchmark: "tm-study (choosing attack on test only)",
      config: c ?? "dc",
      step: c ? best(c).step : null,
      ...sum,
    });
    return progress.end();
  }
  const chooseRows = [];
  const baseVal = await summarize(
    exactRun(base, valExact, undefined, null, "exact-val-dc", [1], ["apgd-ce"]),
  );
  for (const c of study.configs.filter((c) => c.exactValidation !== false)) {
    const model = await open(c.bundle);
    const b = best(c);
    const r = exactRun(
      model,
      valExact,
      await lora(c, model, b.step),
      `${c.name}@${b.step}`,
      `exact-val-${c.name}-${b.step}`,
      [1],
      ["apgd-ce"],
    );
    const sum = await summarize(r);
    chooseRows.push({
      config: c,
      best_step: b.step,
      checkpoint: b,
      exact_validation: sum.worst_case,
    });
  }
  const chosen = [...chooseRows].sort((a, b) =>
    // ties under the exact attack go to the better transfer validation, then the earlier step
    b.exact_validation.accuracy - a.exact_validation.accuracy ||
    b.checkpoint.validation.transfer_robust - a.checkpoint.validation.transfer_robust ||
    a.best_step - b.best_step
  )[0];

  // 3. test: the plain DC and the chosen adapter under the same exact attack, paired per image.
  const dcTest = await summarize(
    exactRun(
      base,
      testExact,
      undefined,
      null,
      // shared with the `bench dc-exact` run of the same settings when the study names it
      study.exact.dcCheckpoint ? join(config.root, study.exact.dcCheckpoint) : "exact-test-dc",
      study.exact.levels,
      study.exact.attacks,
    ),
  );
  // chosen.best_step is best(chosen.config).step: the choice was made on that checkpoint
  const tmTest = await summarize(await fullTestRun(chosen.config));
  const strip = ({ worst_flags: _, ...s }: typeof dcTest) => s;

  // 4. the study table: every configuration's best checkpoint under the choosing attack on the
  //    test images, as on validation, paired per image with the DC under the same attack; the
  //    full test attack (every level) where one ran to its end (the chosen ones).
  const dcChoose = await testChoose(undefined);
  if (state.base?.dc === undefined || JSON.stringify(state.base.dc) !== dcKey) {
    log("the plain DC on the checkpoint sets (clean, transfer)");
    const score = async (set: typeof val) => {
      const r = await scoreAdapter(base, dc, set, undefined);
      return { clean: r.clean_accuracy, transfer_robust: r.robust_accuracy };
    };
    state.base = { dc: study.dc ?? null, validation: await score(val), test: await score(test) };
    await save();
  }
  const fullFigures = (f: typeof dcTest) => ({
    worst_case: f.worst_case,
    adaptive_levels: f.levels.map((l) => l.accuracy),
    ...f.saturation,
  });
  const studyTable = [];
  for (const c of study.configs) {
    const b = best(c);
    const m = await open(c.bundle);
    const row = chooseRows.find((r) => r.config.name === c.name);
    const t = row ? await testChoose(c) : undefined;
    const fullRun = await fullTestRun(c);
    const full = c.name === chosen.config.name
      ? tmTest
      : await exactRunFinished(fullRun)
      ? await summarize(fullRun)
      : undefined;
    studyTable.push({
      config: c.name,
      bundle: c.bundle,
      lora_parameters: m.loraLayout.reduce((n, l) => n + l.shape.reduce((a, d) => a * d, 1), 0),
      lr: c.lr,
      steps: c.steps,
      training_eps: c.eps,
      source: c.source,
      seconds: state.runs[c.name].seconds,
      seconds_note: state.runs[c.name].secondsNote ?? null,
      best_step: b.step,
      validation: {
        n: study.valN,
        clean: b.validation.clean,
        transfer_robust: b.validation.transfer_robust,
        exact_n: study.exact.n,
        exact: row?.exact_validation ?? null,
      },
      test: {
        n: study.testN,
        clean: b.test.clean,
        transfer_robust: b.test.transfer_robust,
        exact_n: study.exact.n,
        exact: t?.worst_case ?? null,
        exact_vs_dc: t ? paired(dcChoose.worst_flags, t.worst_flags) : null,
        full_attack: full ? fullFigures(full) : null,
      },
      note: c.note ?? null,
    });
  }
  const tableReport = {
    attack: `choosing attack: white-box exact (fixed seed), APGD-CE ×1 (${study.exact.iters} ` +
      `it, ${study.exact.pairs} pairs/step) from each transferred example, ${study.norm} ` +
      `${study.eps}; worst case per image over transfer and it`,
    full_attack: `${study.exact.attacks.join(" + ")} at levels ×${
      study.exact.levels.join(", ×")
    } (${study.exact.iters} it × the level)`,
    dc: {
      validation: { ...state.base!.validation, exact: baseVal.worst_case },
      test: { ...state.base!.test, exact: dcChoose.worst_case, full_attack: fullFigures(dcTest) },
    },
    rows: studyTable,
  };
  if (o.md) await Deno.writeTextFile(o.md, studyMarkdown(tableReport, argv));
  await writeReport(o.json, {
    benchmark: "tm-study",
    command: `deno task cli bench tm-study ${argv.join(" ")}`,
    study,
    what: "Truth Maximization configurations: transfer-robust curve on validation and test at " +
      "every checkpoint; the choice by the exact white-box attack on validation; DC vs the " +
      "chosen TMDC under the same exact attack on test, paired per image",
    modes: {
      checkpoint_curve: `transfer (APGD-CE on ${surrogate.id}, ${study.norm} ${study.eps})`,
      choice_and_test:
        `white-box exact (fixed seed; bench/dc_exact.ts), ${study.norm} ${study.eps}`,
    },
    configs: study.configs.map((c) => ({
      ...c,
      seconds: state.runs[c.name].seconds,
      seconds_note: state.runs[c.name].secondsNote,
      checkpoints: state.runs[c.name].checkpoints.map((k) => ({
        ...k,
        test_transfer_ci95: wilson(Math.round(k.test.transfer_robust * study.testN), study.testN),
      })),
    })),
    choice: {
      base_dc_exact_validation: baseVal.worst_case,
      rows: chooseRows,
      chosen: { config: chosen.config.name, step: chosen.best_step },
    },
    study_table: tableReport,
    test: {
      n: study.exact.n,
      dc: strip(dcTest),
      tmdc: strip(tmTest),
      paired: paired(dcTest.worst_flags, tmTest.worst_flags),
    },
    machine: machine(),
  });
  progress.end();
}

/** Images robust only with TM / only without, and the sign test on them. */
export function paired(dc: ArrayLike<number>, tm: ArrayLike<number>) {
  let tmOnly = 0;
  let dcOnly = 0;
  for (let i = 0; i < dc.length; i++) {
    if (tm[i] && !dc[i]) tmOnly++;
    if (dc[i] && !tm[i]) dcOnly++;
  }
  return {
    tmdc_only_robust: tmOnly,
    dc_only_robust: dcOnly,
    sign_test_p: signTestP(tmOnly, dcOnly),
  };
}

type Fig = { robust: number; accuracy: number; ci95: number[] };
type FullFigures = { worst_case: Fig; adaptive_levels: number[]; saturated: boolean };
type SetFigures = { clean: number; transfer_robust: number; exact: Fig | null };
const pc = (x: number) => `${(100 * x).toFixed(1)}%`;
const fig = (f: Fig | null, n: number) =>
  f
    ? `${pc(f.accuracy)} [${(100 * f.ci95[0]).toFixed(1)}, ${
      (100 * f.ci95[1]).toFixed(1)
    }] (${f.robust}/${n})`
    : "–";
const full = (f: FullFigures | null, n: number) =>
  f
    ? `${fig(f.worst_case, n)} (adaptive only ${f.adaptive_levels.map(pc).join(" → ")}; ${
      f.saturated ? "saturated" : "not saturated"
    })`
    : "not run";

/** The study table as Markdown: one row per configuration, validation and test side by side. */
export function studyMarkdown(
  t: {
    attack: string;
    full_attack: string;
    dc: { validation: SetFigures; test: SetFigures & { full_attack: FullFigures } };
    rows: {
      config: string;
      lora_parameters: number;
      lr: number;
      training_eps: number;
      source: string;
      seconds: number;
      seconds_note: string | null;
      best_step: number;
      validation: SetFigures & { n: number; exact_n: number };
      test: SetFigures & {
        n: number;
        exact_n: number;
        exact_vs_dc:
          | { tmdc_only_robust: number; dc_only_robust: number; sign_test_p: number }
          | null;
        full_attack: FullFigures | null;
      };
      note: string | null;
    }[];
  },
  argv: readonly string[],
): string {
  if (!t.rows.length) return "# Truth Maximization study\n\nNo configurations.\n";
  const { validation: v0, test: t0 } = t.rows[0];
  const n = v0.exact_n;
  const notes = t.rows.filter((r) => r.note);
  const sets = (v: SetFigures, s: SetFigures) =>
    `${pc(v.clean)} | ${pc(v.transfer_robust)} | ${fig(v.exact, n)} | ${pc(s.clean)} | ${
      pc(s.transfer_robust)
    } | ${fig(s.exact, n)}`;
  return [
    "# Truth Maximization study (issue 13)",
    "",
    `Generated by \`deno task cli bench tm-study ${argv.join(" ")}\`. Each configuration's best ` +
    `checkpoint (by transfer-robust accuracy on validation) on ${v0.n} validation and ${t0.n} ` +
    `test images (clean; transfer: APGD-CE on the surrogate) and, in the "exact" columns, on the ` +
    `first ${n} of each under the ${t.attack}. The configuration is chosen on validation only; ` +
    `test is reported. Full test attack: ${t.full_attack}, worst case per image over transfer ` +
    "and every level (the levels in brackets count the adaptive stages only). Intervals: 95% " +
    "Wilson. Seconds: training with its checkpoint scoring, where the study trained.",
    "",
    "| configuration | LoRA parameters | lr | training ε | examples | best step | seconds | val clean | val transfer | val exact | test clean | test transfer | test exact | test exact vs DC: TM only / DC only (p) | full test attack |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    `| DC (no TM) | 0 | – | – | – | – | – | ${sets(t.dc.validation, t.dc.test)} | – | ${
      full(t.dc.test.full_attack, n)
    } |`,
    ...t.rows.map((r) =>
      `| ${r.config}${notes.includes(r) ? ` (${notes.indexOf(r) + 1})` : ""} | ${
        r.lora_parameters.toLocaleString("en-US")
      } | ${r.lr} | ${r.training_eps} | ${r.source} | ${r.best_step} | ${
        r.seconds_note ? "≈ " : ""
      }${r.seconds.toFixed(0)} | ${sets(r.validation, r.test)} | ${
        r.test.exact_vs_dc
          ? `${r.test.exact_vs_dc.tmdc_only_robust} / ${r.test.exact_vs_dc.dc_only_robust} (${
            r.test.exact_vs_dc.sign_test_p.toPrecision(2)
          })`
          : "–"
      } | ${full(r.test.full_attack, n)} |`
    ),
    "",
    ...notes.map((r, i) => `(${i + 1}) ${r.config}: ${r.note}`),
    ...[...new Set(t.rows.flatMap((r) => r.seconds_note ? [r.seconds_note] : []))].map((note) =>
      `≈ seconds: ${note}`
    ),
    "",
  ].join("\n");
}
