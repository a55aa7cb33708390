/**
 * A Truth-Maximization job on a worker: resume from the frontend's last checkpoint (or LoRA's
 * initialisation), train, send every checkpoint (adapter + optimizer state + validation score)
 * to the frontend as it is reached. A worker killed mid-run loses at most the steps since the
 * last checkpoint: the lease expires, another worker gets the unit with that checkpoint.
 */
import { config } from "../config.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import { type LabelledImages, loadTrainSplit } from "../lib/fashion_mnist.ts";
import { loadCifar10TrainSplits } from "../lib/cifar10.ts";
import { type FinetuneSpec, runFinetune, validationSet } from "../lib/finetune.ts";
import { initState, packState, unpackState } from "../lib/truth_max.ts";
import { need, type WorkerModels } from "./models.ts";
import {
  type FinetuneResult,
  type FinetuneUnitMsg,
  fromBase64,
  toBase64,
  unitRef,
} from "./protocol.ts";
import type { RunnerContext } from "./runners.ts";

type Data = "fashion-mnist" | "cifar10";
const splits = new Map<Data, Promise<[LabelledImages, LabelledImages]>>();

/** The training and validation splits, read once per compute slot. */
export function trainingData(
  data: Data = "fashion-mnist",
): Promise<[LabelledImages, LabelledImages]> {
  let s = splits.get(data);
  if (!s) {
    s = data === "cifar10" ? loadCifar10TrainSplits() : Promise.all([
      loadTrainSplit(config.root, "train"),
      loadTrainSplit(config.root, "validation"),
    ]);
    splits.set(data, s);
    s.catch(() => splits.delete(data)); // a folder configured later is read then
  }
  return s;
}

export async function runFinetuneUnit(
  models: WorkerModels,
  msg: FinetuneUnitMsg,
  ctx: RunnerContext,
): Promise<FinetuneResult> {
  const t0 = performance.now();
  const model = need(models.diffusion, msg.bundle, "diffusion");
  const surrogate = need(models.classifiers, msg.finetune.source.bundle, "surrogate");
  const [train, val] = await trainingData(msg.finetune.data);
  const ft = msg.finetune;
  const spec: FinetuneSpec = {
    hyper: ft.hyper,
    seed: ft.seed,
    attack: ft.attack,
    checkpoints: ft.checkpoints,
    validation: ft.validation,
    pool: ft.pool,
    dc: msg.settings,
  };
  const oracle = classifierOracle(surrogate);
  const state = msg.resume
    ? unpackState(fromBase64(msg.resume.state), model.loraLayout, msg.resume.step)
    : initState(model.loraLayout, spec.seed);
  const total = ft.hyper.steps;
  ctx.progress({ calls: state.step, total });
  const valSet = await validationSet(val, spec, oracle, model.imageShape);
  await runFinetune(model, oracle, train, valSet, spec, state, {
    onProgress: (step) => ctx.progress({ calls: step, total }),
    onCheckpoint: (s, info) => {
      ctx.send({ type: "checkpoint", ...unitRef(msg), ...info, state: toBase64(packState(s)) });
      return Promise.resolve();
    },
  });
  return { computeMs: performance.now() - t0, provider: model.base.provider };
}
