/**
 * One evaluation shard on a worker: decode the unit, run it with the one evaluation engine
 * (lib/evaluation/engine.ts), encode the outcome. The shard's clean images come from the
 * Fashion-MNIST test split the worker holds, or from the unit itself for an uploaded set.
 */
import { config } from "../config.ts";
import { bundleShape } from "../lib/bundle.ts";
import { runShard } from "../lib/evaluation/engine.ts";
import { modelSet } from "../lib/evaluation/targets.ts";
import { DatasetError, gather, type LabelledImages } from "../lib/fashion_mnist.ts";
import { type BuiltinName, loadBuiltin } from "../lib/builtin_datasets.ts";
import { loraTensors, need, type WorkerModels } from "./models.ts";
import { type EvaluationUnitMsg as EvalUnit, float32FromBase64, toBase64 } from "./protocol.ts";
import type { RunnerContext } from "./runners.ts";

/** built-in test splits, read once per worker */
const testSets = new Map<BuiltinName, Promise<LabelledImages>>();

/** Per-image float32 arrays (base64) as one n × D array. */
function stack(list: string[]): Float32Array {
  const parts = list.map(float32FromBase64);
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  parts.forEach((p, i) => out.set(p, i * p.length));
  return out;
}

export async function runEvalUnit(models: WorkerModels, msg: EvalUnit, ctx?: RunnerContext) {
  const spec = msg.spec;
  // a DC or a DiffPure target is a diffusion bundle (DiffPure's classifier is looked up by the engine)
  const dcTarget = spec.target.kind === "dc" || spec.target.kind === "diffpure"
    ? need(models.diffusion, spec.target.bundle, "target")
    : undefined;
  const target = dcTarget?.base ?? need(models.classifiers, spec.target.bundle, "target");
  let set: LabelledImages;
  if (msg.images) {
    set = {
      images: stack(msg.images.pixels),
      labels: Int32Array.from(msg.images.labels),
      n: msg.images.pixels.length,
    };
  } else {
    if (spec.dataset.name === "uploaded") {
      // an uploaded set's images travel with the unit: without them there is nothing to read
      throw new DatasetError(`unit of uploaded set ${spec.dataset.id} arrived without its images`);
    }
    const name = spec.dataset.name;
    const whole = testSets.get(name) ?? loadBuiltin(name, config.root);
    testSets.set(name, whole);
    whole.catch(() => testSets.delete(name)); // a missing folder may be configured later
    const all = await whole;
    const beyond = msg.indices.find((i) => i >= all.n);
    if (beyond !== undefined) {
      throw new DatasetError(`${name} has ${all.n} images here; index ${beyond} is beyond it`);
    }
    set = gather(all, Int32Array.from(msg.indices));
  }
  const run = await runShard({
    spec,
    indices: msg.indices,
    images: set,
    shape: bundleShape(target.bundle.manifest),
    dc: msg.settings,
    lora: msg.lora && dcTarget && spec.target.kind === "dc"
      ? loraTensors(dcTarget, msg.lora)
      : undefined,
    adv: msg.adv ? stack(msg.adv) : null,
    // the heartbeat carries the current phase's count (attack evaluations, then UNet calls)
    onProgress: ctx && ((_phase, done, total) => ctx.progress({ calls: done, total })),
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
    provider: dcTarget?.base.provider ?? "cpu",
  };
}
