/**
 * One evaluation shard on a worker: attack the shard's images on the source model (unless
 * the frontend sent stored adversarial examples), then score the target on the clean and
 * the adversarial images.
 */
import { config } from "../config.ts";
import { dcOracle, evenTimesteps } from "../lib/attacks/dc_oracle.ts";
import { classifierOracle, type GradientOracle, predictions } from "../lib/attacks/oracle.ts";
import { type AttackConfig, runAttack } from "../lib/attacks/registry.ts";
import { lpDistance, type Norm } from "../lib/attacks/projections.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { gather, type LabelledImages, loadTest } from "../lib/fashion_mnist.ts";
import type { OnnxClassifier, OnnxDiffusionModel } from "./onnx_model.ts";
import { fromBase64, type FrontendMessage, toBase64 } from "./protocol.ts";
import { unpackState } from "../lib/truth_max.ts";

type EvalUnit = Extract<FrontendMessage, { type: "eval-unit" }>;

let testSet: Promise<LabelledImages> | undefined;

export interface WorkerModels {
  diffusion: Map<string, OnnxDiffusionModel>;
  classifiers: Map<string, OnnxClassifier>;
}

function need<T>(m: Map<string, T>, id: string, what: string): T {
  const v = m.get(id);
  if (!v) throw new Error(`this worker does not hold the ${what} bundle ${id}`);
  return v;
}

/** An adapter's LoRA tensors from the frontend's base64 (float32, the bundle's layout order). */
export function loraTensors(model: OnnxDiffusionModel, b64: string) {
  return unpackState(fromBase64(b64), model.loraLayout, 0, false).lora;
}

export async function runEvalUnit(models: WorkerModels, msg: EvalUnit) {
  const t0 = performance.now();
  let set: LabelledImages;
  if (msg.images) {
    // an uploaded set: the frontend sent the clean images and labels of this shard
    const px = msg.images.pixels.map(fromBase64);
    const images = new Float32Array(px.reduce((a, b) => a + b.length, 0) / 4);
    px.forEach((b, i) =>
      images.set(new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4), i * (b.length / 4))
    );
    set = { images, labels: Int32Array.from(msg.images.labels), n: px.length };
  } else {
    testSet ??= loadTest(config.root);
    set = gather(await testSet, Int32Array.from(msg.indices));
  }
  const ev = msg.evaluation;
  const settings = msg.settings as DCSettings;
  const shape = { channels: 1, height: 28, width: 28 };
  const n = set.n;
  const D = set.images.length / n;

  let xAdv: Float32Array;
  let perAttack: { attack: string; robust: number; total: number }[] | undefined;
  if (msg.adv) {
    xAdv = new Float32Array(n * D);
    msg.adv.forEach((b64, i) => {
      const bytes = fromBase64(b64);
      xAdv.set(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), i * D);
    });
  } else {
    const src = ev.source as {
      kind: "surrogate" | "dc";
      bundle: string;
      timesteps?: number;
      noise?: "fixed" | "fresh";
      logitScale?: number;
      /** adaptive attacks on a fine-tuned DC go through its adapter (= the target's) */
      adapter?: string | null;
    };
    let oracle: GradientOracle;
    if (src.kind === "surrogate") {
      oracle = classifierOracle(need(models.classifiers, src.bundle, "surrogate"));
    } else {
      const m = need(models.diffusion, src.bundle, "diffusion");
      oracle = dcOracle(m, {
        lora: src.adapter && msg.lora ? loraTensors(m, msg.lora) : undefined,
        timesteps: evenTimesteps(src.timesteps ?? 10, settings.tRange[0], settings.tRange[1]),
        error: settings.error,
        scale: src.logitScale ?? 100,
        noise: src.noise ?? "fixed",
        seed: settings.seed,
      });
    }
    const out = await runAttack(
      oracle,
      set.images,
      set.labels,
      ev.attack as unknown as AttackConfig,
      shape,
    );
    xAdv = out.xAdv;
    perAttack = out.perAttack?.map((p) => ({
      attack: p.attack,
      robust: Math.round(p.robustAccuracy * n),
      total: n,
    }));
  }

  let score: (x: Float32Array) => Promise<Int32Array>;
  let rescore: ((x: Float32Array, m: number, seed: number) => Promise<Int32Array>) | undefined;
  let provider = "cpu";
  if (ev.target.kind === "classifier") {
    const c = need(models.classifiers, ev.target.bundle, "target");
    score = async (x) => predictions(await c.logits(x, n), n, c.classNames.length);
  } else {
    const m = need(models.diffusion, ev.target.bundle, "target");
    provider = m.provider;
    const lora = msg.lora ? loraTensors(m, msg.lora) : undefined;
    rescore = async (x, k, seed) =>
      Int32Array.from(
        (await classifyImages(m, x, k, { ...settings, seed }, { lora })).map((v) => v.label),
      );
    score = (x) => rescore!(x, n, settings.seed);
  }
  const clean = await score(set.images);
  const adv = await score(xAdv);
  // Spec §7: re-score the adversarial points with fresh noise draws (only those right on the
  // clean image can count as robust; the others are marked -1).
  const R = ev.rescore ?? 0;
  const fresh: number[][] = Array.from({ length: n }, () => []);
  if (R > 0 && rescore) {
    const idx = Array.from({ length: n }, (_, i) => i).filter((i) => clean[i] === set.labels[i]);
    const x = gather({ images: xAdv, labels: set.labels, n }, Int32Array.from(idx)).images;
    for (let r = 1; r <= R; r++) {
      const p = idx.length ? await rescore(x, idx.length, settings.seed + r) : new Int32Array();
      fresh.forEach((f) => f.push(-1));
      idx.forEach((i, k) => (fresh[i][r - 1] = p[k]));
    }
  }
  return {
    items: msg.indices.map((index, i) => ({
      index,
      label: set.labels[i],
      cleanPred: clean[i],
      advPred: adv[i],
      // distance in the attack's norm: the report checks it never exceeds ε
      dist: lpDistance(
        (ev.attack as { norm: Norm }).norm,
        xAdv.subarray(i * D, (i + 1) * D),
        set.images.subarray(i * D, (i + 1) * D),
      ),
      fresh: R > 0 ? fresh[i] : undefined,
      adv: msg.adv
        ? null
        : toBase64(new Uint8Array(xAdv.buffer, xAdv.byteOffset + i * D * 4, D * 4)),
    })),
    perAttack,
    computeMs: performance.now() - t0,
    provider,
  };
}
