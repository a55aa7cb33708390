/**
 * lib/result_checks.ts against what honest workers really send: the deployment's default DC
 * (the committed bundle and its sequential-race settings) on real test images must pass every
 * check — `bench load` found a check (label = posterior argmax) that the race's honest verdicts
 * break — and forgeries must not.
 */
import { join } from "node:path";
import { assertEquals } from "./assert.ts";
import { REPO } from "./helpers.ts";
import { adversarialProblem, verdictProblem } from "../lib/result_checks.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import { defaultSettings } from "../lib/dc_settings.ts";
import { loadTest } from "../lib/fashion_mnist.ts";
import { loadDiffusionBundle } from "../lib/bundle.ts";
import { OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";

Deno.test("the default DC's own verdicts pass the frontend's checks; forged ones do not", async () => {
  const bundle = await loadDiffusionBundle(join(REPO, "models", "fmnist-ddpm-unet32"));
  const model = new OnnxDiffusionModel(bundle, { threads: 2 });
  const test = await loadTest(REPO);
  const n = 12;
  const results = await classifyImages(
    model,
    test.images.subarray(0, n * 784),
    n,
    defaultSettings(bundle.manifest),
  );
  const numbers = (r: (typeof results)[number]) => ({
    label: r.label,
    posterior: Array.from(r.posterior),
    errorSum: Array.from(r.errorSum),
    errorSumSq: Array.from(r.errorSumSq),
    count: Array.from(r.count),
    meanError: Array.from(r.meanError),
    survivors: r.survivors,
  });
  for (const r of results) assertEquals(verdictProblem(numbers(r), true), null);
  const honest = numbers(results[0]);
  const other = honest.survivors.at(-1)!.includes(0) ? 9 : 0;
  const forged = { ...honest, label: other, survivors: [...honest.survivors, [honest.label]] };
  assertEquals(verdictProblem(forged, true) !== null, true, "a label that left the race");
  const lying = { ...honest, meanError: honest.meanError.map((v) => v * 2) };
  assertEquals(verdictProblem(lying, true) !== null, true, "means that are not sums / counts");
});

Deno.test("adversarial examples: finite, in range, inside the ball of their norm", () => {
  const clean = new Float32Array([0, 0.5, 1, 0.25]);
  const at = (d: number[]) => new Float32Array(d);
  assertEquals(adversarialProblem(clean, at([0.1, 0.4, 0.9, 0.35]), "linf", 0.1), null);
  assertEquals(adversarialProblem(clean, at([0.3, 0.5, 1, 0.25]), "l2", 0.3), null);
  const bad: [Float32Array, string, number, RegExp][] = [
    [at([0.2, 0.5, 1, 0.25]), "linf", 0.1, /distance/],
    [at([0.3, 0.5, 1, 0.45]), "l2", 0.3, /distance/], // ‖·‖₂ = 0.36
    [at([0, NaN, 1, 0.25]), "linf", 0.1, /finite/],
    [at([0, 0.5, 1.05, 0.25]), "linf", 0.1, /outside/],
    [at([0, 0.5, 1]), "linf", 0.1, /values/],
  ];
  for (const [adv, norm, eps, why] of bad) {
    const p = adversarialProblem(clean, adv, norm as "linf" | "l2", eps) ?? "";
    assertEquals(why.test(p), true, `${p} for ${adv}`);
  }
});
