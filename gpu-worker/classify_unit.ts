/**
 * One image through the diffusion classifier on a worker: Algorithm 1 (paired Monte Carlo
 * error estimates, staged elimination) with the job's settings and adapter. The frontend
 * turns the numbers into the stored verdict (service/units/classify.ts).
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
  const model = need(models.diffusion, msg.bundle, "diffusion");
  const lora = msg.lora ? loraTensors(model, msg.lora) : undefined;
  const pixels = float32FromBase64(msg.pixels);
  const t0 = performance.now();
  const [r] = await classifyImages(model, pixels, 1, msg.settings, {
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
