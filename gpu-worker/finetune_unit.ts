/**
 * A Truth-Maximization job on a worker: resume from the frontend's last checkpoint (or LoRA's
 * initialisation), train, send every checkpoint (adapter + optimizer state + validation score)
 * to the frontend as it is reached. A worker killed mid-run loses at most the steps since the
 * last checkpoint: the lease expires, another worker gets the unit with that checkpoint.
 */
import { config } from "../config.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import type { AttackConfig } from "../lib/attacks/registry.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { type LabelledImages, loadTrainSplit } from "../lib/fashion_mnist.ts";
import { type FinetuneSpec, runFinetune, validationSet } from "../lib/finetune.ts";
import { initState, packState, unpackState } from "../lib/truth_max.ts";
import type { WorkerModels } from "./eval_unit.ts";
import { fromBase64, type FrontendMessage, toBase64, type WorkerMessage } from "./protocol.ts";

type FinetuneUnit = Extract<FrontendMessage, { type: "finetune-unit" }>;

let splits: Promise<[LabelledImages, LabelledImages]> | undefined;

export function trainingData() {
  splits ??= Promise.all([
    loadTrainSplit(config.root, "train"),
    loadTrainSplit(config.root, "validation"),
  ]);
  return splits;
}

export async function runFinetuneUnit(
  models: WorkerModels,
  msg: FinetuneUnit,
  send: (m: WorkerMessage) => void,
  progress: (step: number) => void,
) {
  const t0 = performance.now();
  const model = models.diffusion.get(msg.bundle);
  if (!model) throw new Error(`this worker does not hold bundle ${msg.bundle}`);
  const surrogate = models.classifiers.get(msg.finetune.source.bundle);
  if (!surrogate) {
    throw new Error(`this worker does not hold the surrogate ${msg.finetune.source.bundle}`);
  }
  const [train, val] = await trainingData();
  const spec: FinetuneSpec = {
    hyper: msg.finetune.hyper,
    seed: msg.finetune.seed,
    attack: msg.finetune.attack as AttackConfig | null,
    checkpoints: msg.finetune.checkpoints,
    validation: msg.finetune.validation,
    pool: msg.finetune.pool,
    dc: msg.settings as DCSettings,
  };
  const oracle = classifierOracle(surrogate);
  const state = msg.resume
    ? unpackState(fromBase64(msg.resume.state), model.loraLayout, msg.resume.step)
    : initState(model.loraLayout, spec.seed);
  const valSet = await validationSet(val, spec, oracle, model.imageShape);
  const ref = { jobId: msg.jobId, idx: msg.idx, token: msg.token };
  await runFinetune(model, oracle, train, valSet, spec, state, {
    onProgress: (step) => progress(step),
    onCheckpoint: (s, info) => {
      send({ type: "ft-checkpoint", ...ref, ...info, state: toBase64(packState(s)) });
      return Promise.resolve();
    },
  });
  return {
    type: "ft-result" as const,
    computeMs: performance.now() - t0,
    provider: model.provider,
  };
}
