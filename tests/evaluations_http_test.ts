/** POST /v1/evaluations validation in-process: every bad configuration is a problem+json 4xx and stores nothing. */
import { assertEquals } from "./assert.ts";
import { inProcessApp, storedKeys } from "./service_helpers.ts";

const good = {
  target: { bundle: "tiny-diffusion" },
  source: { kind: "surrogate", bundle: "resnet8-fmnist" },
  attack: { attack: "pgd", norm: "linf", eps: 0.05, steps: 10 },
  dataset: { name: "fashion-mnist-test", n: 16, seed: 0 },
};

Deno.test("bad evaluation configurations are refused with problem+json and nothing stored", async (t) => {
  const { app, store, key, close } = await inProcessApp();
  const post = (body: unknown) =>
    app.request("/v1/evaluations", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const cases: [string, unknown, number, string][] = [
    [
      "unknown attack",
      { ...good, attack: { ...good.attack, attack: "deepfool" } },
      422,
      "invalid-attack",
    ],
    ["negative ε", { ...good, attack: { ...good.attack, eps: -0.1 } }, 422, "invalid-attack"],
    ["Linf ε above 1", { ...good, attack: { ...good.attack, eps: 2 } }, 422, "invalid-attack"],
    [
      "norm/attack mismatch (FGSM is Linf)",
      { ...good, attack: { attack: "fgsm", norm: "l2", eps: 0.5 } },
      422,
      "invalid-attack",
    ],
    [
      "steps too large for the quota",
      {
        ...good,
        source: { kind: "dc", bundle: "tiny-diffusion", timesteps: 100 },
        attack: { ...good.attack, steps: 100000 },
      },
      422,
      "invalid-attack",
    ],
    ["zero steps", { ...good, attack: { ...good.attack, steps: 0 } }, 422, "invalid-attack"],
    [
      "too many target classes",
      { ...good, attack: { attack: "apgd-t", norm: "linf", eps: 0.1, nTargetClasses: 10 } },
      422,
      "invalid-attack",
    ],
    ["unknown norm", { ...good, attack: { ...good.attack, norm: "l1" } }, 400, "invalid-request"],
    ["unknown source kind", { ...good, source: { kind: "oracle" } }, 400, "invalid-request"],
    [
      "unknown source bundle",
      { ...good, source: { kind: "surrogate", bundle: "nope" } },
      404,
      "unknown-bundle",
    ],
    [
      "surrogate source that is a diffusion model",
      { ...good, source: { kind: "surrogate", bundle: "tiny-diffusion" } },
      422,
      "wrong-bundle-kind",
    ],
    ["unknown target bundle", { ...good, target: { bundle: "nope" } }, 404, "unknown-bundle"],
    [
      "unknown adapter",
      { ...good, target: { bundle: "tiny-diffusion", adapter: "a1" } },
      404,
      "unknown-adapter",
    ],
    [
      "subset larger than the test set",
      { ...good, dataset: { name: "fashion-mnist-test", n: 20000 } },
      400,
      "invalid-request",
    ],
    ["unknown dataset", { ...good, dataset: { name: "cifar10", n: 10 } }, 400, "invalid-request"],
    [
      "invalid DC settings",
      {
        ...good,
        target: {
          bundle: "tiny-diffusion",
          settings: { stages: [{ nSamples: 4, keep: 2 }], gridSize: 8 },
        },
      },
      422,
      "invalid-settings",
    ],
    [
      "fresh-noise re-scoring of a deterministic target",
      { ...good, target: { bundle: "resnet8-fmnist" }, rescore: 10 },
      422,
      "invalid-rescore",
    ],
    ["too many fresh-noise draws", { ...good, rescore: 21 }, 400, "invalid-request"],
    ["not JSON", "{nope", 400, "invalid-request"],
    ["extra fields", { ...good, priority: "high" }, 400, "invalid-request"],
  ];
  for (const [name, body, status, code] of cases) {
    await t.step(name, async () => {
      const r = await post(body);
      assertEquals(r.status, status);
      assertEquals(r.headers.get("content-type"), "application/problem+json");
      assertEquals((await r.json()).code, code);
      assertEquals(await storedKeys(store), [], "nothing may be stored");
    });
  }
  const ok = await post(good);
  assertEquals(ok.status, 202);
  const { job } = await ok.json();
  assertEquals([job.kind, job.total, job.evaluation.mode], ["evaluate", 2, "transfer"]);
  close();
});
