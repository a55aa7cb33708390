/**
 * `evaluate`: one robustness evaluation in-process: an attack made on a source (the surrogate
 * bundle, or the DC through its own gradients) and scored on a target over a seeded subset of
 * the Fashion-MNIST test split.
 */
import { config } from "../config.ts";
import { unetCalls } from "../lib/diffusion_classifier.ts";
import { gather, seededSubset } from "../lib/fashion_mnist.ts";
import { datasetMismatch, loadBuiltin } from "../lib/builtin_datasets.ts";
import { ATTACKS, validateAttack } from "../lib/attacks/registry.ts";
import type { AttackConfig } from "../lib/attacks/config.ts";
import { adversarialSetKey, runShard } from "../lib/evaluation/engine.ts";
import { asRun, evaluationReport } from "../lib/evaluation/report.ts";
import {
  evaluationMode,
  type EvaluationSpec,
  type SourceSpec,
  type TargetSpec,
} from "../lib/evaluation/spec.ts";
import { modelSet } from "../lib/evaluation/targets.ts";
import type { EvalRun } from "../lib/evaluation_checks.ts";
import { imageSize } from "../lib/model.ts";
import {
  loadAdapter,
  machine,
  openDiffusion,
  openSurrogate,
  settingsFor,
  usageError,
  writeReport,
} from "../bench/common.ts";
import { defineCommand } from "./command.ts";
import { Progress } from "./progress.ts";
import { DATASET, DIFFUSION_BUNDLE, SURROGATE_BUNDLE, THREADS } from "./shared_options.ts";

export const evaluateCommand = defineCommand({
  summary: "one robustness evaluation: attack on a source, scored on a target (in-process)",
  description: "mode: transfer when source ≠ target, adaptive for dc → dc, white-box for " +
    "surrogate → surrogate.",
  options: {
    attack: {
      type: "enum",
      values: Object.keys(ATTACKS),
      required: true,
      arg: "NAME",
      help: `the attack: ${Object.keys(ATTACKS).join(", ")}`,
    },
    norm: { type: "enum", values: ["linf", "l2"], default: "linf", help: "threat model" },
    eps: { type: "number", min: 0, required: true, help: "perturbation budget (images in [0, 1])" },
    source: {
      type: "enum",
      values: ["surrogate", "dc"],
      default: "surrogate",
      help: "where adversarial examples are made",
    },
    target: {
      type: "enum",
      values: ["dc", "surrogate"],
      default: "dc",
      help: "what is scored",
    },
    adapter: { type: "string", arg: "ID", help: "a TMDC adapter (LoRA) from the service's KV" },
    dataset: DATASET,
    n: { type: "int", min: 1, max: 10000, default: 128, help: "images of the seeded subset" },
    seed: {
      type: "int",
      min: 0,
      max: 2 ** 32 - 1,
      default: 0,
      help: "subset seed, also the attack's",
    },
    steps: { type: "int", min: 1, help: "attack iterations (default: the attack's)" },
    restarts: { type: "int", min: 1, help: "attack restarts (default: the attack's)" },
    version: {
      type: "enum",
      values: ["standard", "plus", "rand"],
      help: "AutoAttack version",
    },
    eot: { type: "int", min: 1, help: "gradient samples per step (EOT)" },
    "attack-timesteps": {
      type: "int",
      min: 1,
      max: 1000,
      default: 10,
      help: "timesteps of the DC's gradient estimate (source dc)",
    },
    estimator: {
      type: "enum",
      values: ["even", "own"],
      default: "even",
      help:
        "source dc: an even grid with its own noise, or the DC's own grid pairs (exact white-box)",
    },
    noise: {
      type: "enum",
      values: ["fixed", "fresh"],
      default: "fixed",
      help: "the DC gradient's noise: one draw per timestep, or fresh per call (source dc)",
    },
    "logit-scale": {
      type: "number",
      above: 0,
      default: 100,
      help: "logits = −scale × mean error (source dc)",
    },
    settings: { type: "settings", help: "overrides of the bundle's default DC settings" },
    rescore: {
      type: "int",
      min: 0,
      max: 100,
      default: 0,
      help: "re-score the adversarial set with R fresh noise seeds (target dc)",
    },
    bundle: DIFFUSION_BUNDLE,
    surrogate: SURROGATE_BUNDLE,
    threads: THREADS,
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
    sanity: { type: "boolean", help: "run the unbounded-budget and doubled-budget checks" },
    "sanity-n": { type: "int", min: 1, default: 16, help: "images the sanity checks use" },
  },
  async run(values, _, args) {
    const threads = values.threads;
    const model = await openDiffusion(values.bundle, threads);
    const surrogate = await openSurrogate(values.surrogate, threads);
    const dcSettings = settingsFor(model, values.settings);
    const adapter = values.adapter ? await loadAdapter(values.adapter, model) : undefined;
    const K = model.classNames.length;
    const attack: AttackConfig = validateAttack(
      {
        attack: values.attack,
        norm: values.norm,
        eps: values.eps,
        steps: values.steps,
        restarts: values.restarts,
        eotIter: values.eot,
        version: values.version,
        seed: values.seed,
      },
      K,
      100_000,
    );
    const misfit = datasetMismatch(values.dataset, model.imageShape, model.classNames.length);
    if (misfit) usageError(misfit);
    if (values.source === "surrogate" || values.target === "surrogate") {
      const off = datasetMismatch(
        values.dataset,
        surrogate.imageShape,
        surrogate.classNames.length,
      );
      if (off) usageError(`the surrogate ${surrogate.id} does not fit: ${off} (pass --surrogate)`);
    }
    const test = await loadBuiltin(values.dataset, config.root);
    if (values.n > test.n) usageError(`--n ${values.n}: ${values.dataset} has ${test.n} images`);
    const n = values.n;
    const subset = seededSubset(test.n, n, values.seed);
    const set = gather(test, subset);
    const D = imageSize(model.imageShape);

    // The same specs the service stores: the engine runs them (lib/evaluation/engine.ts).
    const adapterId = adapter?.rec.id ?? null;
    const source: SourceSpec = values.source === "dc"
      ? {
        kind: "dc",
        bundle: model.id,
        timesteps: values["attack-timesteps"],
        ...(values.estimator === "own" ? { estimator: "own" as const } : {}),
        noise: values.noise,
        logitScale: values["logit-scale"],
        adapter: adapterId,
      }
      : { kind: "surrogate", bundle: surrogate.id };
    const target: TargetSpec = values.target === "dc"
      ? { kind: "dc", bundle: model.id, adapter: adapterId, settings: dcSettings }
      : { kind: "classifier", bundle: surrogate.id };
    const specFor = (a: AttackConfig, m: number): EvaluationSpec => {
      const base = {
        attack: a,
        source,
        dataset: { name: values.dataset, n: m, seed: values.seed },
      };
      return {
        ...base,
        target,
        setKey: adversarialSetKey(base),
        mode: evaluationMode(source, target),
        ...(values.rescore > 0 && target.kind === "dc" ? { rescore: values.rescore } : {}),
      };
    };
    const models = modelSet(new Map([[model.id, model]]), new Map([[surrogate.id, surrogate]]));
    const progress = new Progress("evaluate");
    const run = (a: AttackConfig, m: number, what: string) => {
      let phase = "";
      return runShard({
        spec: specFor(a, m),
        indices: Array.from(subset.subarray(0, m)),
        images: { images: set.images.subarray(0, m * D), labels: set.labels.subarray(0, m), n: m },
        shape: model.imageShape,
        dc: dcSettings,
        lora: adapter?.lora,
        onProgress: (name, done, total, unit) => {
          if (name !== phase) {
            progress.start(`${what}: ${(phase = name)} (${m} images)`, total, unit);
          }
          progress.update(done, total);
        },
      }, models);
    };
    const main = await run(attack, n, `${attack.attack}`);

    // Spec §7 on the first m images, as siblings of this run: an unbounded budget reaches 0%
    // (adaptive, white-box) and doubling the attack's budget changes nothing beyond noise.
    const siblings: EvalRun[] = [];
    if (values.sanity) {
      const m = Math.min(n, values["sanity-n"]);
      const unbounded = { ...attack, eps: attack.norm === "linf" ? 1 : Math.sqrt(D) };
      const doubled = {
        ...attack,
        steps: (attack.steps ?? 1) * 2,
        eotIter: (attack.eotIter ?? 1) * 2,
      };
      siblings.push(
        asRun(
          "sanity-unbounded",
          specFor(unbounded, m),
          (await run(unbounded, m, "sanity: unbounded")).items,
        ),
        asRun(
          "sanity-doubled",
          specFor(doubled, m),
          (await run(doubled, m, "sanity: doubled")).items,
        ),
      );
    }
    progress.end();
    const out = {
      benchmark: "evaluate",
      command: `deno task cli evaluate ${args.join(" ")}`,
      subset: `first n of lib/fashion_mnist.ts seededSubset(${test.n}, n, seed), ${values.dataset}`,
      ...evaluationReport(specFor(attack, n), [main], {
        complete: true,
        siblings,
        imageSize: D,
        id: "this run",
      }),
      target_unet_calls_per_image: target.kind === "dc" ? unetCalls(dcSettings, K) : 0,
      per_attack: main.attackDetail,
      warnings: main.warnings,
      attack_seconds: main.attackSeconds,
      seconds: main.computeMs / 1000,
      machine: machine(),
    };
    await writeReport(values.json, out);
  },
});
