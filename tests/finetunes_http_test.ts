/** POST /v1/finetunes and adapter references: bad input is a problem+json 4xx and stores nothing. */
import { PAPER_TM, paperCheckpoints } from "../lib/truth_max.ts";
import { assertEquals } from "./assert.ts";
import { inProcessApp, storedKeys } from "./service_helpers.ts";

const good = {
  bundle: "tiny-diffusion",
  hyper: { steps: 20, batchSize: 4 },
  attack: { attack: "fgsm", norm: "linf", eps: 0.05 },
  source: { kind: "surrogate", bundle: "resnet8-fmnist" },
  checkpoints: [10, 20],
  validation: { n: 4 },
};

Deno.test("bad fine-tune requests and adapter references are refused; nothing stored", async (t) => {
  const { app, store, key, close } = await inProcessApp();
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  const post = (path: string, body: unknown) =>
    app.request(path, {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const cases: [string, string, unknown, number, string][] = [
    ["not JSON", "/v1/finetunes", "{", 400, "invalid-request"],
    ["negative lr", "/v1/finetunes", { ...good, hyper: { lr: -1 } }, 400, "invalid-request"],
    ["beta1 = 1", "/v1/finetunes", { ...good, hyper: { beta1: 1 } }, 400, "invalid-request"],
    ["zero steps", "/v1/finetunes", { ...good, hyper: { steps: 0 } }, 400, "invalid-request"],
    [
      "checkpoint after the last step",
      "/v1/finetunes",
      { ...good, checkpoints: [10, 30] },
      422,
      "invalid-checkpoints",
    ],
    [
      "unknown attack",
      "/v1/finetunes",
      { ...good, attack: { attack: "deepfool", norm: "linf", eps: 0.05 } },
      422,
      "invalid-attack",
    ],
    [
      "ε < 0",
      "/v1/finetunes",
      { ...good, attack: { attack: "fgsm", norm: "linf", eps: -0.1 } },
      422,
      "invalid-attack",
    ],
    [
      "a classifier as the model to fine-tune",
      "/v1/finetunes",
      { ...good, bundle: "resnet8-fmnist" },
      422,
      "wrong-bundle-kind",
    ],
    [
      "a diffusion model as the attack source",
      "/v1/finetunes",
      { ...good, source: { kind: "surrogate", bundle: "tiny-diffusion" } },
      422,
      "wrong-bundle-kind",
    ],
    [
      "validation larger than the split allows",
      "/v1/finetunes",
      { ...good, validation: { n: 100000 } },
      400,
      "invalid-request",
    ],
    ["extra field", "/v1/finetunes", { ...good, gpu: "a100" }, 400, "invalid-request"],
    [
      "unknown adapter in an evaluation",
      "/v1/evaluations",
      {
        target: { bundle: "tiny-diffusion", adapter: "00000000-0000-0000-0000-000000000000" },
        source: { kind: "surrogate", bundle: "resnet8-fmnist" },
        attack: { attack: "fgsm", norm: "linf", eps: 0.05 },
        dataset: { name: "fashion-mnist-test", n: 4 },
      },
      404,
      "unknown-adapter",
    ],
  ];
  for (const [name, path, body, status, code] of cases) {
    await t.step(name, async () => {
      const r = await post(path, body);
      assertEquals(r.status, status);
      assertEquals(r.headers.get("content-type"), "application/problem+json");
      assertEquals((await r.json()).code, code);
      assertEquals(await storedKeys(store), [], "nothing may be stored");
    });
  }
  await t.step("unknown fine-tune and adapter ids are 404", async () => {
    for (const p of ["/v1/finetunes/nope", "/v1/adapters/nope"]) {
      const r = await app.request(p, { headers });
      assertEquals(r.status, 404);
      assertEquals(r.headers.get("content-type"), "application/problem+json");
    }
  });
  await t.step("an adapter trained on another bundle is refused (422)", async () => {
    const adapter = await store.putCheckpoint(null, {
      bundle: "some-other-bundle@1.0.0",
      jobId: "11111111-1111-1111-1111-111111111111",
      owner: "test",
      step: 10,
      loss: 0,
      validation: { n: 1, clean_accuracy: 1, robust_accuracy: 1 },
      finetune: {
        hyper: {
          lr: 1e-6,
          beta1: 0.9,
          beta2: 0.999,
          weightDecay: 1e-2,
          adamEps: 1e-8,
          warmupSteps: 0,
          batchSize: 4,
          steps: 10,
        },
        seed: 0,
        attack: null,
        source: { kind: "surrogate", bundle: "resnet8-fmnist" },
        checkpoints: [10],
        validation: { n: 1, seed: 0 },
      },
    }, new Uint8Array(12));
    const fd = new FormData();
    fd.append("image", new Blob([new Uint8Array(10)], { type: "image/png" }), "x.png");
    fd.append("options", JSON.stringify({ adapter }));
    const r = await app.request("/v1/classify", {
      method: "POST",
      body: fd,
      headers: { authorization: headers.authorization },
    });
    assertEquals(r.status, 422);
    assertEquals((await r.json()).code, "adapter-bundle-mismatch");
  });
  const ok = await post("/v1/finetunes", good);
  assertEquals(ok.status, 202);
  const { job } = await ok.json();
  assertEquals([job.kind, job.total, job.finetune.checkpoints], ["finetune", 1, [10, 20]]);
  assertEquals(job.finetune.hyper.lr, 1e-6, "the paper's learning rate is the default");

  // only the models named: every other field is the paper's (nested defaults included)
  const minimal = await post("/v1/finetunes", {
    bundle: "tiny-diffusion",
    source: { kind: "surrogate", bundle: "resnet8-fmnist" },
  });
  assertEquals(minimal.status, 202);
  const spec = (await minimal.json()).job.finetune;
  assertEquals(spec.hyper, { ...PAPER_TM });
  assertEquals(spec.checkpoints, paperCheckpoints(PAPER_TM.steps));
  assertEquals(spec.validation, { n: 64, seed: 0 });
  assertEquals([spec.attack.attack, spec.attack.version, spec.attack.eps], [
    "autoattack",
    "plus",
    0.05,
  ]);
  close();
});
