import { assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { classifyImages, fullGrid, stageIndices, unetCalls } from "../lib/diffusion_classifier.ts";
import { type DCSettings, PAPER_SETTINGS } from "../lib/dc_settings.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { assertClose, reference, TINY_DIFFUSION } from "./helpers.ts";

Deno.test("Li et al.'s grid: t = 1..999 step 2; stage 1 is 11, 31, ..., 991; 2,750 calls", () => {
  const g = fullGrid(PAPER_SETTINGS);
  assertEquals([g[0], g[1], g[499]], [1, 3, 999]);
  const [s1, s2] = stageIndices(PAPER_SETTINGS);
  assertEquals(s1.length, 50);
  assertEquals([g[s1[0]], g[s1[1]], g[s1[49]]], [11, 31, 991]);
  assertEquals(s2.length, 450);
  assertEquals(unetCalls(PAPER_SETTINGS, 10), 2750);
});

interface RefVerdict {
  label: number;
  errorSum: number[];
  count: number[];
  unetCalls: number;
}

const bundle = await loadDiffusionBundle(TINY_DIFFUSION);
const model = new OnnxDiffusionModel(bundle, {
  threads: 1,
});
const images = Float32Array.from(reference.images as number[]);

for (
  const [k, fx]
    of (reference.dc as { settings: DCSettings; grid: number[]; verdicts: RefVerdict[] }[])
      .entries()
) {
  Deno.test(`engine matches the PyTorch reference DC (case ${k}: ${fx.settings.error}, ${fx.settings.timesteps})`, async () => {
    assertEquals(Array.from(fullGrid(fx.settings)), fx.grid);
    const out = await classifyImages(model, images, 4, fx.settings, { batchRows: 7 });
    out.forEach((v, i) => {
      const ref = fx.verdicts[i];
      assertEquals(v.label, ref.label, `label of image ${i}`);
      assertEquals(Array.from(v.count), ref.count, `counts of image ${i}`);
      assertEquals(v.unetCalls, ref.unetCalls);
      assertClose(v.errorSum, ref.errorSum, 1e-4, `per-class errors of image ${i}`);
    });
  });
}

Deno.test("posterior is a distribution peaked at the label; errors carry standard errors", async () => {
  const s: DCSettings = { ...reference.dc[0].settings, posteriorScale: 50 };
  const [v] = await classifyImages(model, images.subarray(0, 784), 1, s);
  const sum = v.posterior.reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-12) throw new Error(`posterior sums to ${sum}`);
  const best = v.posterior.indexOf(Math.max(...v.posterior));
  assertEquals(best, v.label);
  if (!v.stdError.every((e, c) => v.count[c] < 2 || e > 0)) throw new Error("zero standard error");
});

Deno.test("bad settings are refused before any model call", async () => {
  const base = reference.dc[0].settings as DCSettings;
  await assertRejects(() =>
    classifyImages(model, images, 4, { ...base, stages: [{ nSamples: 6, keep: 3 }] })
  );
  await assertRejects(() => classifyImages(model, images, 4, { ...base, tRange: [0, 5000] }));
  await assertRejects(() => classifyImages(model, images, 3, base));
  assertThrows(() => fullGrid({ ...base, gridSize: 5000 }));
});
