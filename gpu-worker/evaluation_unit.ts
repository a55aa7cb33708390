/**
 * One evaluation shard on a worker: decode the unit, run it with the one evaluation engine
 * (lib/evaluation/engine.ts), encode the outcome. The shard's clean images come from the
 * Fashion-MNIST test split the worker holds, or from the unit itself for an uploaded set.
 */
import { config } from "../config.ts";
import { bundleShape } from "../lib/bundle.ts";
import { runShard } from "../lib/evaluation/engine.ts";
import { modelSet } from "../lib/evaluation/targets.ts";
import { gather, type LabelledImages, loadTest } from "../lib/fashion_mnist.ts";
import { loraTensors, type WorkerModels } from "./models.ts";
import { type EvaluationUnitMsg as EvalUnit, fromBase64, toBase64 } from "./protocol.ts";

let testSet: Promise<LabelledImages> | undefined;

const floats = (b64: string) => {
  const bytes = fromBase64(b64);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
};

/** Concatenate per-image float32 arrays (base64) into one n × D array. */
function stack(list: string[]): Float32Array {
  const parts = list.map(floats);
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export async function runEvalUnit(models: WorkerModels, msg: EvalUnit) {
  const spec = msg.spec;
  const target = spec.target.kind === "dc"
    ? models.diffusion.get(spec.target.bundle)
    : models.classifiers.get(spec.target.bundle);
  if (!target) throw new Error(`this worker does not hold the target bundle ${spec.target.bundle}`);
  let set: LabelledImages;
  if (msg.images) {
    set = {
      images: stack(msg.images.pixels),
      labels: Int32Array.from(msg.images.labels),
      n: msg.images.pixels.length,
    };
  } else {
    testSet ??= loadTest(config.root);
    set = gather(await testSet, Int32Array.from(msg.indices));
  }
  const dcTarget = spec.target.kind === "dc" ? models.diffusion.get(spec.target.bundle) : undefined;
  const run = await runShard({
    spec,
    indices: msg.indices,
    images: set,
    shape: bundleShape(target.bundle.manifest),
    dc: msg.settings,
    lora: msg.lora && dcTarget ? loraTensors(dcTarget, msg.lora) : undefined,
    adv: msg.adv ? stack(msg.adv) : null,
  }, modelSet(models.diffusion, models.classifiers));
  const D = set.images.length / set.n;
  return {
    items: run.items.map((it, i) => ({
      ...it,
      adv: msg.adv
        ? null
        : toBase64(new Uint8Array(run.xAdv.buffer, run.xAdv.byteOffset + i * D * 4, D * 4)),
    })),
    perAttack: run.perAttack,
    computeMs: run.computeMs,
    provider: dcTarget?.provider ?? "cpu",
  };
}
