/** Truth Maximization's training step against the PyTorch reference (issue 5 parity). */
import { join } from "node:path";
import { assertEquals, assertThrows } from "./assert.ts";
import {
  adamwStep,
  initState,
  lrAt,
  packState,
  paperCheckpoints,
  trainStep,
  unpackState,
} from "../lib/truth_max.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadBundle, loadDiffusionBundle } from "../lib/bundle.ts";
import { assertClose, FIXTURES, relErr, TINY_DIFFUSION } from "./helpers.ts";

// deno-lint-ignore no-explicit-any
const ref: any = JSON.parse(await Deno.readTextFile(join(FIXTURES, "tm_reference.json")));

async function tiny() {
  const b = await loadDiffusionBundle(TINY_DIFFUSION);
  return new OnnxDiffusionModel(b, { threads: 1 });
}

Deno.test("paper schedule: checkpoints every 100 steps to 500, then every 1,000; warm-up from lr 0", () => {
  assertEquals(paperCheckpoints(3000), [100, 200, 300, 400, 500, 1000, 2000, 3000]);
  assertEquals(paperCheckpoints(250), [100, 200, 250]);
  const h = { lr: 1e-6, warmupSteps: 100 };
  assertEquals([lrAt(h, 0), lrAt(h, 50), lrAt(h, 100), lrAt(h, 2999)], [0, 5e-7, 1e-6, 1e-6]);
});

Deno.test("AdamW: the first step moves every weight by lr·sign(g) (bias-corrected), decays first", () => {
  const s = {
    step: 0,
    lora: [Float32Array.of(1, -2, 0)],
    m: [new Float32Array(3)],
    v: [new Float32Array(3)],
  };
  const h = {
    lr: 0.1,
    beta1: 0.9,
    beta2: 0.999,
    weightDecay: 0.5,
    adamEps: 0,
    warmupSteps: 0,
    batchSize: 1,
    steps: 1,
  };
  adamwStep(s, [Float32Array.of(3, -0.5, 2)], h, 0.1);
  assertClose(s.lora[0], [1 * 0.95 - 0.1, -2 * 0.95 + 0.1, -0.1], 1e-6, "AdamW step");
  assertEquals(s.step, 1);
});

Deno.test("LoRA init, four TS steps == four torch.optim.AdamW steps within 1e-5 (tiny bundle)", async () => {
  const model = await tiny();
  const s = initState(model.loraLayout, ref.seed);
  // A from the portable RNG exactly as the reference draws it, B = 0
  s.lora.forEach((t, i) => assertClose(t, ref.init[i], 1e-7, `init ${model.loraLayout[i].name}`));
  const x = Float32Array.from(ref.images);
  const y = Int32Array.from(ref.labels);
  const losses: number[] = [];
  for (let k = 0; k < ref.hyper.steps; k++) {
    losses.push(await trainStep(model, s, ref.hyper, ref.seed, x, y));
  }
  assertClose(losses, ref.losses, 1e-5, "losses");
  let worst = 0;
  s.lora.forEach((t, i) => (worst = Math.max(worst, relErr(t, ref.final[i]))));
  if (!(worst <= 1e-5)) throw new Error(`LoRA after ${ref.hyper.steps} steps: rel ${worst}`);
  // the B tensors moved (the test would pass trivially if nothing trained)
  const bMoved = s.lora.filter((_t, i) => model.loraLayout[i].name.endsWith(".B"))
    .every((t) => t.some((v) => v !== 0));
  assertEquals(bMoved, true);
});

Deno.test("adapter state packs and unpacks losslessly; a wrong layout is refused", async () => {
  const model = await tiny();
  const s = initState(model.loraLayout, 1);
  s.m[0][0] = 0.25;
  const back = unpackState(packState(s), model.loraLayout, 7);
  assertEquals(back.step, 7);
  assertEquals(Array.from(back.lora[0]), Array.from(s.lora[0]));
  assertEquals(back.m[0][0], 0.25);
  assertThrows(() => unpackState(new Uint8Array(12), model.loraLayout, 0), RangeError);
});

Deno.test("adversarial pool: a seeded subset of the training split, attacked once within ε", async () => {
  const { adversarialPool } = await import("../lib/finetune.ts");
  const { loadTrainSplit } = await import("../lib/fashion_mnist.ts");
  const { classifierOracle } = await import("../lib/attacks/oracle.ts");
  const { OnnxClassifier } = await import("../gpu-worker/onnx_model.ts");
  const { REPO, TINY_SURROGATE } = await import("./helpers.ts");
  const sb = await loadBundle(TINY_SURROGATE);
  const sur = new OnnxClassifier(sb as never, { threads: 1 });
  const train = await loadTrainSplit(REPO, "train");
  assertEquals(train.n, 55000);
  const spec = {
    hyper: ref.hyper,
    seed: 4,
    attack: { attack: "fgsm", norm: "linf" as const, eps: 0.05, seed: 0, steps: 1, restarts: 1 },
    checkpoints: [],
    validation: { n: 1, seed: 0 },
    dc: {} as never,
    pool: 10,
  };
  const shape = { channels: 1, height: 28, width: 28 };
  const a = await adversarialPool(classifierOracle(sur), train, spec, shape, 4);
  const b = await adversarialPool(classifierOracle(sur), train, spec, shape, 4);
  assertEquals(a.n, 10);
  assertEquals(Array.from(a.images), Array.from(b.images)); // deterministic
  const clean = await adversarialPool(
    classifierOracle(sur),
    train,
    { ...spec, attack: null },
    shape,
  );
  let maxd = 0;
  let moved = 0;
  a.images.forEach((v, i) => {
    maxd = Math.max(maxd, Math.abs(v - clean.images[i]));
    if (v !== clean.images[i]) moved++;
  });
  assertEquals(Array.from(a.labels), Array.from(clean.labels));
  if (!(maxd <= 0.05 + 1e-6 && moved > 1000)) throw new Error(`max ${maxd}, moved ${moved}`);
});
