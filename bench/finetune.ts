/**
 * `deno task cli finetune`: a Truth-Maximization run in-process (the same lib/finetune.ts the
 * worker runs), checkpoints stored as adapters in the deployment's KV so their ids work in
 * `bench classify --adapter`, `evaluate --adapter` and the HTTP API. `--resume RUN` continues
 * a stopped run from its last checkpoint.
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { config } from "../config.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import { type AttackConfig, AttackConfigError, validateAttack } from "../lib/attacks/registry.ts";
import { loadTrainSplit } from "../lib/fashion_mnist.ts";
import {
  bestCheckpoint,
  type FinetuneSpec,
  runFinetune,
  scoreAdapter,
  validationSet,
} from "../lib/finetune.ts";
import { initState, packState, PAPER_TM, paperCheckpoints, unpackState } from "../lib/truth_max.ts";
import { Store } from "../store/kv_store.ts";
import {
  machine,
  openDiffusion,
  openSurrogate,
  settingsFor,
  usageError,
  writeReport,
} from "./common.ts";

export async function finetuneCommand(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      steps: { type: "string", default: String(PAPER_TM.steps) },
      seed: { type: "string", default: "0" },
      lr: { type: "string", default: String(PAPER_TM.lr) },
      "weight-decay": { type: "string", default: String(PAPER_TM.weightDecay) },
      warmup: { type: "string", default: String(PAPER_TM.warmupSteps) },
      batch: { type: "string", default: String(PAPER_TM.batchSize) },
      attack: { type: "string", default: "autoattack" },
      version: { type: "string", default: "plus" },
      norm: { type: "string", default: "linf" },
      eps: { type: "string", default: "0.05" },
      "attack-steps": { type: "string" },
      checkpoints: { type: "string" },
      "val-n": { type: "string", default: "64" },
      pool: { type: "string", default: "0" },
      "val-seed": { type: "string", default: "0" },
      bundle: { type: "string" },
      surrogate: { type: "string", default: join(config.modelsDir, "resnet14-fmnist") },
      threads: { type: "string", default: "0" },
      resume: { type: "string" },
      json: { type: "string", default: "-" },
    },
  });
  const steps = Number(values.steps);
  const threads = Number(values.threads);
  const model = await openDiffusion(values.bundle, threads);
  const surrogate = await openSurrogate(values.surrogate!, threads);
  let attack: AttackConfig | null = null;
  if (values.attack !== "none") {
    try {
      attack = validateAttack(
        {
          attack: values.attack!,
          norm: values.norm as "linf" | "l2",
          eps: Number(values.eps),
          version: values.attack === "autoattack"
            ? values.version as AttackConfig["version"]
            : undefined,
          steps: values["attack-steps"] ? Number(values["attack-steps"]) : undefined,
          seed: 0,
        },
        model.classNames.length,
        config.limits.maxAttackEvalsPerImage,
      );
    } catch (e) {
      if (e instanceof AttackConfigError) usageError(e.message);
      throw e;
    }
  }
  const spec: FinetuneSpec = {
    hyper: {
      ...PAPER_TM,
      lr: Number(values.lr),
      weightDecay: Number(values["weight-decay"]),
      warmupSteps: Number(values.warmup),
      batchSize: Number(values.batch),
      steps,
    },
    seed: Number(values.seed),
    attack,
    checkpoints: values.checkpoints
      ? values.checkpoints.split(",").map(Number)
      : paperCheckpoints(steps),
    validation: { n: Number(values["val-n"]), seed: Number(values["val-seed"]) },
    pool: Number(values.pool),
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
  const [train, val] = await Promise.all([
    loadTrainSplit(config.root, "train"),
    loadTrainSplit(config.root, "validation"),
  ]);
  const t0 = performance.now();
  const oracle = classifierOracle(surrogate);
  const valSet = await validationSet(val, spec, oracle, model.imageShape);
  const base = await scoreAdapter(model, spec.dc, valSet, undefined);
  console.error(
    `[finetune ${runId}] base DC on validation: clean ${base.clean_accuracy}, robust ${base.robust_accuracy}`,
  );
  let lastLog = 0;
  await runFinetune(model, oracle, train, valSet, spec, state, {
    onProgress: (step, loss) => {
      if (performance.now() - lastLog > 15_000) {
        lastLog = performance.now();
        console.error(`[finetune] step ${step}/${steps} loss ${loss.toFixed(4)}`);
      }
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
      console.error(
        `[finetune] checkpoint ${info.step}: adapter ${id}, validation robust ${info.validation.robust_accuracy}`,
      );
    },
  });
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
  await writeReport(values.json!, out);
}
