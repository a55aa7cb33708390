/**
 * One image through the diffusion classifier on a worker: Algorithm 1 (paired Monte Carlo
 * error estimates, staged elimination) with the job's settings and adapter — or, for a
 * discriminative bundle (settings null), its softmax. The frontend turns the numbers into the
 * stored verdict (service/units/classify.ts).
 */
import { classifyImages } from "../lib/diffusion_classifier.ts";
import { loraTensors, need, type WorkerModels } from "./models.ts";
import { type ClassifyResult, type ClassifyUnitMsg, float32FromBase64 } from "./protocol.ts";
import type { RunnerContext } from "./runners.ts";

export async function runClassifyUnit(
  models: WorkerModels,
  msg: ClassifyUnitMsg,
  ctx: RunnerContext,
): Promise<ClassifyResult> {
  if (msg.settings === null) return await runClassifierUnit(models, msg);
  const model = need(models.diffusion, msg.bundle, "diffusion");
  const lora = msg.lora ? loraTensors(model, msg.lora) : undefined;
  const pixels = float32FromBase64(msg.pixels);
  const t0 = performance.now();
  const settings = msg.settings;
  const [r] = await classifyImages(model, pixels, 1, settings, {
    lora,
    onProgress: (calls, total) => ctx.progress({ calls, total }),
  });
  return {
    label: r.label,
    errorSum: Array.from(r.errorSum),
    errorSumSq: Array.from(r.errorSumSq),
    count: Array.from(r.count),
    posterior: Array.from(r.posterior),
    meanError: Array.from(r.meanError),
    stdError: Array.from(r.stdError),
    unetCalls: r.unetCalls,
    survivors: r.survivors,
    stop: r.stop,
    ...(r.exitAt ? { exitAt: r.exitAt } : {}),
    computeMs: performance.now() - t0,
    provider: model.base.provider,
  };
}

/** A discriminative classifier's verdict: softmax of its logits, one forward pass. */
async function runClassifierUnit(
  models: WorkerModels,
  msg: ClassifyUnitMsg,
): Promise<ClassifyResult> {
  const model = need(models.classifiers, msg.bundle, "classifier");
  const pixels = float32FromBase64(msg.pixels);
  const t0 = performance.now();
  const z = await model.logits(pixels, 1);
  const max = Math.max(...z);
  const e = Array.from(z, (v) => Math.exp(v - max));
  const sum = e.reduce((a, v) => a + v, 0);
  const posterior = e.map((v) => v / sum);
  return {
    label: posterior.indexOf(Math.max(...posterior)),
    errorSum: [],
    errorSumSq: [],
    count: [],
    posterior,
    meanError: [],
    stdError: [],
    unetCalls: 0,
    survivors: [],
    stop: "forward",
    computeMs: performance.now() - t0,
    provider: model.provider,
  };
}
