/**
 * `deno task cli finetune`: a Truth-Maximization run in-process (the same lib/finetune.ts the
 * worker runs), checkpoints stored as adapters in the deployment's KV so their ids work in
 * `bench classify --adapter`, `evaluate --adapter` and the HTTP API. `--resume RUN` continues
 * a stopped run from its last checkpoint.
 */
import { config } from "../config.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import { attackCost, validateAttack } from "../lib/attacks/registry.ts";
import type { AttackConfig } from "../lib/attacks/config.ts";
import { loadTrainSplit } from "../lib/fashion_mnist.ts";
import { loadCifar10TrainSplits } from "../lib/cifar10.ts";
import { datasetMismatch } from "../lib/builtin_datasets.ts";
import {
  bestCheckpoint,
  type FinetuneSpec,
  runFinetune,
  scoreAdapter,
  validationSet,
} from "../lib/finetune.ts";
import { initState, packState, PAPER_TM, paperCheckpoints, unpackState } from "../lib/truth_max.ts";
import { Store } from "../store/kv_store.ts";
import { Progress } from "../cli/progress.ts";
import { countingOracle } from "../lib/attacks/oracle.ts";
import {
  machine,
  openDiffusion,
  openSurrogate,
  settingsFor,
  usageError,
  writeReport,
} from "./common.ts";

/** The checked command-line options (cli/finetune.ts declares and validates them). */
export interface FinetuneOptions {
  steps: number;
  seed: number;
  lr: number;
  "weight-decay": number;
  warmup: number;
  batch: number;
  /** an attack name, or `none` (train on clean images: an ablation) */
  attack: string;
  version: "standard" | "plus" | "rand";
  norm: "linf" | "l2";
  eps: number;
  "attack-steps"?: number;
  checkpoints?: number[];
  "val-n": number;
  pool: number;
  "val-seed": number;
  data: "fashion-mnist" | "cifar10";
  bundle: string;
  surrogate: string;
  threads: number;
  resume?: string;
  json: string;
}

export async function finetuneCommand(values: FinetuneOptions, args: readonly string[]) {
  const steps = values.steps;
  const threads = values.threads;
  const model = await openDiffusion(values.bundle, threads);
  const surrogate = await openSurrogate(values.surrogate, threads);
  const split = values.data === "cifar10" ? "cifar10-test" : "fashion-mnist-test";
  for (const m of [model, surrogate]) {
    const misfit = datasetMismatch(split, m.imageShape, m.classNames.length);
    if (misfit) usageError(`--data ${values.data}: ${misfit} ('${m.id}')`);
  }
  let attack: AttackConfig | null = null;
  if (values.attack !== "none") {
    attack = validateAttack(
      {
        attack: values.attack,
        norm: values.norm,
        eps: values.eps,
        version: values.attack === "autoattack" ? values.version : undefined,
        steps: values["attack-steps"],
        seed: 0,
      },
      model.classNames.length,
      config.limits.maxAttackEvalsPerImage,
    );
  }
  const spec: FinetuneSpec = {
    hyper: {
      ...PAPER_TM,
      lr: values.lr,
      weightDecay: values["weight-decay"],
      warmupSteps: values.warmup,
      batchSize: values.batch,
      steps,
    },
    seed: values.seed,
    attack,
    checkpoints: values.checkpoints ? [...values.checkpoints] : paperCheckpoints(steps),
    validation: { n: values["val-n"], seed: values["val-seed"] },
    pool: values.pool,
    dc: settingsFor(model),
  };
  if (!spec.checkpoints.includes(steps)) spec.checkpoints.push(steps);
  const store = await Store.open(config.kvPath);
  const runId = values.resume ?? `cli-${crypto.randomUUID()}`;
  const last = values.resume ? await store.latestCheckpoint(runId) : null;
  if (values.resume && !last) usageError(`no checkpoint of run '${runId}' in ${config.kvPath}`);
  const state = last
    ? unpackState(last.state, model.loraLayout, last.rec.step)
    : initState(model.loraLayout, spec.seed);
  const [train, val] = values.data === "cifar10"
    ? await loadCifar10TrainSplits()
    : await Promise.all([
      loadTrainSplit(config.root, "train"),
      loadTrainSplit(config.root, "validation"),
    ]);
  const t0 = performance.now();
  const oracle = classifierOracle(surrogate);
  const progress = new Progress("finetune");
  progress.log(`run ${runId}, adapters in ${config.kvPath}`);
  const K = model.classNames.length;
  const valN = spec.validation.n;
  // Attack progress comes from counting the surrogate's evaluations (the wrapper only
  // observes); during training the count is steps instead.
  let countAttack = true;
  const counted = countingOracle(oracle, (k) => {
    if (countAttack) progress.add(k);
  });
  if (spec.attack) {
    progress.start(
      `validation attack ${spec.attack.attack} on ${valN} images`,
      attackCost(spec.attack, K) * valN,
      "image evaluations",
    );
  }
  const valSet = await validationSet(val, spec, counted, model.imageShape);
  progress.end();
  progress.log(`scoring the base DC on ${valN} validation images`);
  const base = await scoreAdapter(model, spec.dc, valSet, undefined);
  progress.log(
    `base DC on validation: clean ${base.clean_accuracy}, robust ${base.robust_accuracy}`,
  );
  const startTraining = (from: number) => {
    countAttack = false;
    progress.start("train", steps, "steps", from);
  };
  if (spec.pool && spec.attack) {
    progress.start(
      `adversarial pool: ${spec.attack.attack} on ${spec.pool} training images`,
      attackCost(spec.attack, K) * spec.pool,
      "image evaluations",
    );
  } else startTraining(state.step);
  await runFinetune(model, counted, train, valSet, spec, state, {
    onProgress: (step, loss) => {
      if (countAttack) startTraining(step - 1);
      progress.update(step, undefined, `loss ${loss.toFixed(4)}`);
    },
    onCheckpoint: async (s, info) => {
      const id = await store.putCheckpoint(null, {
        bundle: model.id,
        jobId: runId,
        owner: "cli",
        step: info.step,
        loss: info.loss,
        validation: info.validation,
        finetune: {
          ...spec,
          attack: spec.attack as never,
          source: { kind: "surrogate", bundle: surrogate.id },
        },
      }, packState(s));
      progress.log(
        `checkpoint ${info.step}: adapter ${id}, validation robust ${info.validation.robust_accuracy}`,
      );
    },
  });
  progress.end();
  const cps = await store.listCheckpoints(runId);
  store.close();
  const best = bestCheckpoint(cps);
  const out = {
    benchmark: "finetune",
    command: `deno task cli finetune ${args.join(" ")}`,
    run: runId,
    adapter_id: best?.id,
    best_step: best?.step,
    bundle: model.id,
    spec: { ...spec, source: { kind: "surrogate", bundle: surrogate.id } },
    validation_base_dc: base,
    checkpoints: cps.map((a) => ({
      step: a.step,
      adapter_id: a.id,
      loss: a.loss,
      validation_clean_accuracy: a.validation.clean_accuracy,
      validation_robust_accuracy: a.validation.robust_accuracy,
      validation_n: a.validation.n,
    })),
    seconds: (performance.now() - t0) / 1000,
    resumed_from_step: last?.rec.step ?? null,
    kv: config.kvPath,
    machine: machine(),
  };
  await writeReport(values.json, out);
}
