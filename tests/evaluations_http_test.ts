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

Deno.test("shapes come from manifests and uploaded sets: a 3×16×16 classifier's set and its adversarial PNG", async () => {
  const { fashionPngs } = await import("./service_helpers.ts");
  const { decodeImage } = await import("../lib/image_decode.ts");
  const { customApp } = await import("./http_helpers.ts");
  // a colour classifier: only its manifest is needed to plan and check (no worker runs here)
  const { app, store, auth, close } = await customApp({
    registry: (r) => {
      const base = r.resolve("resnet8-fmnist")!;
      const manifest = {
        ...base.manifest,
        name: "rgb16",
        image: { ...base.manifest.image, channels: 3, height: 16, width: 16 },
      };
      r.add({ ...base, manifest, id: "rgb16@1.0.0" });
    },
  });
  const pngs = await fashionPngs(2);
  const fd = new FormData();
  pngs.forEach((p, i) =>
    fd.append("image", new Blob([p.png.slice()], { type: "image/png" }), `${i}.png`)
  );
  fd.append("labels", JSON.stringify(pngs.map((p) => p.label)));
  fd.append("bundle", "rgb16");
  const up = await app.request("/v1/datasets", { method: "POST", headers: auth, body: fd });
  assertEquals(up.status, 201);
  const ds = await up.json();
  assertEquals(ds.shape, { channels: 3, height: 16, width: 16 });

  const json = { ...auth, "content-type": "application/json" };
  const post = (target: string) =>
    app.request("/v1/evaluations", {
      method: "POST",
      headers: json,
      body: JSON.stringify({
        target: { bundle: target },
        source: { kind: "surrogate", bundle: "rgb16" },
        attack: { attack: "fgsm", norm: "linf", eps: 0.05 },
        dataset: { name: "uploaded", id: ds.id },
      }),
    });
  // a 1×28×28 target does not fit the set
  const mismatch = await post("resnet8-fmnist");
  assertEquals([mismatch.status, (await mismatch.json()).code], [422, "dataset-mismatch"]);
  // nor does a 1×28×28 source fit a 3×16×16 target
  const crossed = await app.request("/v1/evaluations", {
    method: "POST",
    headers: json,
    body: JSON.stringify({
      target: { bundle: "rgb16" },
      source: { kind: "surrogate", bundle: "resnet8-fmnist" },
      attack: { attack: "fgsm", norm: "linf", eps: 0.05 },
      dataset: { name: "uploaded", id: ds.id },
    }),
  });
  assertEquals([crossed.status, (await crossed.json()).code], [422, "source-target-mismatch"]);
  const r = await post("rgb16");
  assertEquals(r.status, 202);
  const { job } = await r.json();
  assertEquals(job.evaluation.mode, "white-box");

  // the worker would store this adversarial example; the PNG takes the set's shape
  const pixels = new Float32Array(3 * 16 * 16).map((_, i) => (i % 7) / 7);
  await store.putAdversarial(job.evaluation.setKey, [
    { index: 1, label: pngs[1].label, pixels: new Uint8Array(pixels.buffer) },
  ]);
  const png = await app.request(`/v1/evaluations/${job.id}/adversarial/1.png`, { headers: auth });
  assertEquals(png.headers.get("content-type"), "image/png");
  const decoded = await decodeImage(
    new Uint8Array(await png.arrayBuffer()),
    { channels: 3, height: 16, width: 16 },
    1e6,
  );
  assertEquals(decoded.source, { format: "png", width: 16, height: 16, channels: 3 });
  assertEquals(decoded.conversion, []);
  const missing = await app.request(`/v1/evaluations/${job.id}/adversarial/0.png`, {
    headers: auth,
  });
  assertEquals([missing.status, (await missing.json()).code], [404, "unknown-adversarial"]);
  close();
});

Deno.test("a target that does not take the test split's images, or not the source's, is refused", async () => {
  const { app, registry, key, close } = await inProcessApp();
  // the tiny DC as if it took 3×32×32 images (a manifest-level change: files and hashes stay)
  const dc = registry.get("tiny-diffusion");
  registry.add({
    ...dc,
    id: "tiny-diffusion-32@1",
    manifest: {
      ...dc.manifest,
      name: "tiny-diffusion-32",
      version: "1",
      image: { ...dc.manifest.image, channels: 3, height: 32, width: 32 },
    },
  });
  const post = async (body: unknown) => {
    const r = await app.request("/v1/evaluations", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return [r.status, (await r.json()).code];
  };
  const target = { bundle: "tiny-diffusion-32" };
  assertEquals(await post({ ...good, target }), [422, "dataset-mismatch"]);
  assertEquals(
    await post({ ...good, target, source: { kind: "dc", bundle: "tiny-diffusion-32" } }),
    [422, "dataset-mismatch"],
  );
  close();
});
