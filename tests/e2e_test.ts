/**
 * Real processes: the frontend (main.ts) and GPU workers (gpu-worker/main.ts) as separate
 * Deno processes over a real WebSocket, a real KV file, the tiny real bundle and real
 * Fashion-MNIST PNGs.
 */
import { join } from "node:path";
import { assert_, assertEquals } from "./assert.ts";
import { fashionPngs } from "./service_helpers.ts";
import { clusterTest, waitFor } from "./cluster.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { decodeImage } from "../lib/image_decode.ts";
import { OnnxClassifier, OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadClassifierBundle, loadDiffusionBundle } from "../lib/bundle.ts";
import { loadTest } from "../lib/fashion_mnist.ts";
import { REPO } from "./helpers.ts";
import { Store } from "../store/kv_store.ts";

const SMALL = { stages: [{ nSamples: 4, keep: 2 }, { nSamples: 8, keep: 1 }], gridSize: 8 };
// ~2,000 UNet calls per image: long enough to kill a worker in the middle of a job.
const SLOW = { stages: [{ nSamples: 100, keep: 5 }, { nSamples: 250, keep: 1 }], gridSize: 250 };

clusterTest(
  "e2e: any classifier bundle gives a verdict (one forward pass, its softmax); DC options refused",
  async (c, key) => {
    c.startWorker("w1");
    const [{ png }] = await fashionPngs(1);
    const post = (options: unknown) => {
      const fd = new FormData();
      fd.append("image", new Blob([png.slice()], { type: "image/png" }), "fmnist-0.png");
      fd.append("options", JSON.stringify(options));
      return fetch(`${c.url}/v1/classify`, {
        method: "POST",
        body: fd,
        headers: { authorization: `Bearer ${key}` },
      });
    };
    const r = await post({ bundle: "resnet8-fmnist" });
    assertEquals(r.status, 200);
    const v = (await r.json()).verdicts[0];
    assertEquals([v.stop, v.unetCalls, v.settings, v.meanError], ["forward", 0, null, []]);
    const sb = await loadClassifierBundle(join(c.env.TMDC_MODELS_DIR, "tiny-surrogate"));
    const clf = new OnnxClassifier(sb, { threads: 1 });
    const d = await decodeImage(png, clf.imageShape, 1e6);
    const z = Array.from(await clf.logits(d.pixels, 1));
    assertEquals(v.label, z.indexOf(Math.max(...z)));
    assert_(Math.abs(v.posterior.reduce((a: number, p: number) => a + p, 0) - 1) < 1e-6);
    for (
      const bad of [{ bundle: "resnet8-fmnist", settings: SMALL }, {
        bundle: "resnet8-fmnist",
        adapter: "x",
      }]
    ) {
      const b = await post(bad);
      assertEquals(b.status, 422);
      assertEquals((await b.json()).code, "invalid-settings");
    }
  },
);

clusterTest(
  "e2e: upload a real PNG, get a verdict, restart the frontend, read it again",
  async (c, key) => {
    c.startWorker("w1");
    const [{ png, label }] = await fashionPngs(1);
    const fd = new FormData();
    fd.append("image", new Blob([png.slice()], { type: "image/png" }), "fmnist-0.png");
    fd.append("options", JSON.stringify({ settings: SMALL }));
    const r = await fetch(`${c.url}/v1/classify`, {
      method: "POST",
      body: fd,
      headers: { authorization: `Bearer ${key}` },
    });
    assertEquals(r.status, 200);
    const body = await r.json();
    assertEquals(body.job.status, "done");
    const v = body.verdicts[0];
    assertEquals(v.input.name, "fmnist-0.png");
    assertEquals(v.worker.id, "w1");
    assertEquals(v.unetCalls, 10 * 4 + 2 * 4);
    assertEquals(v.stop, "stages");

    // sequential pruning: the verdict says why it stopped and when each class left
    const seq = new FormData();
    seq.append("image", new Blob([png.slice()], { type: "image/png" }), "fmnist-0.png");
    seq.append(
      "options",
      JSON.stringify({
        settings: {
          ...SMALL,
          sequential: { z: 1, batch: 2, minTimesteps: 2, maxTimesteps: 8, orderSeed: 0 },
        },
      }),
    );
    const sr = await (await fetch(`${c.url}/v1/classify`, {
      method: "POST",
      body: seq,
      headers: { authorization: `Bearer ${key}` },
    })).json();
    const sv = sr.verdicts[0];
    assert_(["decided", "budget"].includes(sv.stop), `stop ${sv.stop}`);
    assertEquals(sv.exitAt.length, 10);
    // a class that left was scored on exitAt timesteps (whole rounds of 2, at least 2)
    assert_(sv.exitAt.every((x: number | null) => x === null || (x >= 2 && x % 2 === 0)));
    assert_(sv.unetCalls <= 10 * 8 && sv.unetCalls >= 10 * 2);
    assert_(
      Number.isInteger(v.label) && v.classNames.length === 10,
      `label ${v.label} (true ${label})`,
    );

    await c.stopFrontend();
    await c.startFrontend();
    const again = await (await fetch(`${c.url}/v1/verdicts/${v.id}`, {
      headers: { authorization: `Bearer ${key}` },
    })).json();
    assertEquals(again, v);
  },
);

clusterTest(
  "e2e: worker killed mid-job and frontend restarted; the job completes with every image classified exactly once",
  async (c, key) => {
    const auth = { authorization: `Bearer ${key}` };
    const images = await fashionPngs(8);
    const fd = new FormData();
    images.forEach((im, i) =>
      fd.append("image", new Blob([im.png.slice()], { type: "image/png" }), `img-${i}.png`)
    );
    fd.append("options", JSON.stringify({ settings: SLOW }));
    const r = await fetch(`${c.url}/v1/classify?wait=false`, {
      method: "POST",
      body: fd,
      headers: auth,
    });
    assertEquals(r.status, 202);
    const jobUrl = c.url + r.headers.get("location");
    const job = async () => await (await fetch(jobUrl, { headers: auth })).json();

    c.startWorker("w1");
    await waitFor(
      async () => ((await job()).done >= 2 ? true : undefined),
      "w1 to finish two images",
    );
    await c.killWorker("w1"); // it holds a leased unit now
    await c.stopFrontend(); // and the frontend goes down too
    await c.startFrontend();
    c.startWorker("w2");
    const final = await waitFor(
      async () => {
        const j = await job();
        return j.status === "done" ? j : undefined;
      },
      "the job to finish",
      120_000,
    );
    assertEquals([final.total, final.done, final.failed], [8, 8, 0]);

    const { verdicts } = await (await fetch(`${jobUrl}/verdicts`, { headers: auth })).json();
    assertEquals(
      verdicts.map((v: { index: number }) => v.index).sort((a: number, b: number) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
    const byWorker = new Set(verdicts.map((v: { worker: { id: string } }) => v.worker.id));
    assertEquals([...byWorker].sort(), ["w1", "w2"]);

    // Exactly once: every unit done once; the unit w1 held was leased again.
    await c.shutdown();
    const store = await Store.open(c.env.TMDC_KV_PATH);
    const units = await store.listUnits(final.id);
    store.close();
    assert_(units.every((u) => u.status === "done"));
    assert_(units.some((u) => u.attempts === 2), "the interrupted unit was leased a second time");

    // The verdicts equal an in-process run on the same pixels (nothing mixed up on the way).
    const b = await loadDiffusionBundle(join(c.env.TMDC_MODELS_DIR, "tiny-diffusion"));
    const model = new OnnxDiffusionModel(b, {
      threads: 1,
    });
    const settings = verdicts[0].settings as DCSettings;
    for (const v of verdicts) {
      const d = await decodeImage(images[v.index].png, model.imageShape, 1e6);
      const [ref] = await classifyImages(model, d.pixels, 1, settings);
      assertEquals(v.label, ref.label);
      assertEquals(v.meanError, Array.from(ref.meanError));
    }
  },
);

clusterTest(
  "e2e: an evaluation runs on a worker; a second target reuses the stored adversarial examples; PNGs download",
  async (c, key) => {
    const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    c.startWorker("w1");
    const body = (target: string) => ({
      target: { bundle: target, settings: SMALL },
      source: { kind: "surrogate", bundle: "resnet8-fmnist" },
      attack: { attack: "pgd", norm: "linf", eps: 0.1, steps: 5 },
      dataset: { name: "fashion-mnist-test", n: 12, seed: 3 },
      shardSize: 5,
    });
    const run = async (target: string, extra = {}) => {
      const r = await fetch(`${c.url}/v1/evaluations`, {
        method: "POST",
        headers: auth,
        body: JSON.stringify({ ...body(target), ...extra }),
      });
      assertEquals(r.status, 202);
      const url = c.url + r.headers.get("location");
      return await waitFor(
        async () => {
          const e = await (await fetch(url, { headers: auth })).json();
          return e.job.status === "done" ? e : undefined;
        },
        "the evaluation to finish",
        120_000,
      );
    };
    const onDc = await run("tiny-diffusion", { rescore: 2 });
    assertEquals([onDc.job.total, onDc.job.done], [3, 3]); // shards of 5, 5, 2
    assertEquals(onDc.report.n, 12);
    assertEquals(onDc.report.mode, "transfer");
    assertEquals(onDc.report.reused_adversarial_examples, false);
    assert_(onDc.report.robust_accuracy <= onDc.report.clean_accuracy);
    assertEquals(onDc.report.attack.steps, 5);
    const checks = onDc.report.sanity as { name: string; status: string }[];
    assertEquals(checks[0].name, "perturbation within ε");
    assertEquals(checks[0].status, "passed");
    const sib = checks.slice(1).filter((k) => !k.name.startsWith("fixed-noise"));
    assert_(sib.every((k) => k.status === "not-run"), "no sibling evaluations yet");
    // re-scored with 2 fresh noise draws: the worker's verdicts under DC seeds +1, +2
    const fr = onDc.report.rescored_with_fresh_noise;
    const seed0 = onDc.report.target.settings.seed;
    assertEquals([fr.draws, fr.seeds], [2, [seed0 + 1, seed0 + 2]]);
    assertEquals(fr.robust_accuracy_per_draw.length, 2);
    assert_(fr.robust_accuracy_per_draw.every((a: number) => a <= onDc.report.clean_accuracy));
    assert_(checks.some((k) => k.name.startsWith("fixed-noise") && k.status !== "not-run"));

    const onSurrogate = await run("resnet8-fmnist");
    assertEquals(onSurrogate.report.mode, "white-box");
    assertEquals(onSurrogate.report.reused_adversarial_examples, true);
    assertEquals(onSurrogate.report.adversarial_set, onDc.report.adversarial_set);

    // the evaluation lists its images (dataset indices); the PNGs are named by them
    const subset = (await import("../lib/fashion_mnist.ts")).seededSubset(10000, 12, 3);
    assertEquals(onDc.images, Array.from(subset));
    const idx = onDc.images[0];
    const png = await fetch(`${c.url}/v1/evaluations/${onDc.job.id}/adversarial/${idx}.png`, {
      headers: auth,
    });
    assertEquals(png.headers.get("content-type"), "image/png");
    const bytes = new Uint8Array(await png.arrayBuffer());
    assertEquals(Array.from(bytes.subarray(1, 4)), [0x50, 0x4e, 0x47]); // "PNG"
    const missing = await fetch(`${c.url}/v1/evaluations/${onDc.job.id}/adversarial/99999.png`, {
      headers: auth,
    });
    assertEquals(missing.status, 404);
    await missing.body?.cancel();

    // an uploaded labelled set, evaluated through the worker (clean images travel with the unit)
    const pngs = await fashionPngs(4);
    const fd = new FormData();
    pngs.forEach((p, i) =>
      fd.append("image", new Blob([p.png.slice()], { type: "image/png" }), `${i}.png`)
    );
    fd.append("labels", JSON.stringify(pngs.map((p) => p.label)));
    const up = await fetch(`${c.url}/v1/datasets`, {
      method: "POST",
      body: fd,
      headers: { authorization: auth.authorization },
    });
    assertEquals(up.status, 201);
    const ds = await up.json();
    const r = await fetch(`${c.url}/v1/evaluations`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        ...body("resnet8-fmnist"),
        dataset: { name: "uploaded", id: ds.id },
      }),
    });
    assertEquals(r.status, 202);
    const url = c.url + r.headers.get("location");
    const up4 = await waitFor(async () => {
      const e = await (await fetch(url, { headers: auth })).json();
      return e.job.status === "done" ? e : undefined;
    }, "the uploaded-set evaluation");
    assertEquals([up4.report.n, up4.report.dataset.name], [4, "uploaded"]);
    // same images as the first 4 of the test split: the surrogate's clean accuracy must agree
    const { predictions } = await import("../lib/attacks/oracle.ts");
    const sb = await loadClassifierBundle(join(c.env.TMDC_MODELS_DIR, "tiny-surrogate"));
    const sur = new OnnxClassifier(sb, {
      threads: 1,
    });
    const t = await loadTest(REPO);
    const p = predictions(await sur.logits(t.images.slice(0, 4 * 784), 4), 4, 10);
    const right = Array.from(p).filter((v, i) => v === t.labels[i]).length;
    assertEquals(up4.report.clean_accuracy, right / 4);
  },
);

clusterTest(
  "e2e: DiffPure as a target and an adaptive source over HTTP; its clean verdicts match lib/diffpure",
  async (c, key) => {
    const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    c.startWorker("w1");
    const purify = { classifier: "resnet8-fmnist", tStar: 20, steps: 2, seed: 4 };
    const r = await fetch(`${c.url}/v1/evaluations`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        target: { bundle: "tiny-diffusion", purify },
        source: { kind: "diffpure", bundle: "tiny-diffusion", ...purify },
        attack: { attack: "pgd", norm: "linf", eps: 0.1, steps: 2, eotIter: 2 },
        dataset: { name: "fashion-mnist-test", n: 4, seed: 3 },
        shardSize: 2,
        rescore: 1,
      }),
    });
    assertEquals(r.status, 202);
    const url = c.url + r.headers.get("location");
    const e = await waitFor(
      async () => {
        const j = await (await fetch(url, { headers: auth })).json();
        return j.job.status === "done" ? j : undefined;
      },
      "the DiffPure evaluation",
      120_000,
    );
    assertEquals([e.report.mode, e.report.n, e.report.target.kind], ["adaptive", 4, "diffpure"]);
    assertEquals(e.report.rescored_with_fresh_noise.seeds, [1]);
    // the same clean verdicts as the library on the same images (forward-noise draw 0)
    const { seededSubset, gather } = await import("../lib/fashion_mnist.ts");
    const { forwardNoise, purify: run } = await import("../lib/diffpure.ts");
    const { predictions } = await import("../lib/attacks/oracle.ts");
    const dir = c.env.TMDC_MODELS_DIR;
    const model = new OnnxDiffusionModel(await loadDiffusionBundle(join(dir, "tiny-diffusion")), {
      threads: 1,
    });
    const clf = new OnnxClassifier(await loadClassifierBundle(join(dir, "tiny-surrogate")), {
      threads: 1,
    });
    const t = await loadTest(REPO);
    const set = gather(t, seededSubset(t.n, 4, 3));
    const x0 = (await run(model, set.images, 4, purify, forwardNoise(4, 0, 784))).x0;
    const p = predictions(await clf.logits(x0, 4), 4, 10);
    const right = Array.from(p).filter((v, i) => v === set.labels[i]).length;
    assertEquals(e.report.clean_accuracy, right / 4);

    // a purifier needs a classifier bundle
    const bad = await fetch(`${c.url}/v1/evaluations`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        target: { bundle: "tiny-diffusion", purify: { ...purify, classifier: "tiny-diffusion" } },
        source: { kind: "surrogate", bundle: "resnet8-fmnist" },
        attack: { attack: "fgsm", norm: "linf", eps: 0.1 },
        dataset: { name: "fashion-mnist-test", n: 4, seed: 3 },
      }),
    });
    assertEquals(bad.status, 422);
    assertEquals((await bad.json()).code, "wrong-bundle-kind");
  },
);

clusterTest(
  "e2e: exact white-box source (the DC's own grid pairs) on a secret-seed target: verdicts use the unseen draw",
  async (c, key) => {
    const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    c.startWorker("w1");
    const settings = {
      stages: [{ nSamples: 2, keep: 1 }],
      gridSize: 4,
      sequential: null,
      seed: 6,
      seedMode: "secret",
    };
    const body = (timesteps: number) =>
      JSON.stringify({
        target: { bundle: "tiny-diffusion", settings },
        source: {
          kind: "dc",
          bundle: "tiny-diffusion",
          estimator: "own",
          timesteps,
          noise: "fresh",
        },
        attack: { attack: "pgd", norm: "linf", eps: 0.1, steps: 2, eotIter: 2 },
        dataset: { name: "fashion-mnist-test", n: 4, seed: 3 },
        shardSize: 2,
        rescore: 1,
      });
    // more pairs per step than the classifier's grid holds: refused
    const bad = await fetch(`${c.url}/v1/evaluations`, {
      method: "POST",
      headers: auth,
      body: body(5),
    });
    assertEquals([bad.status, (await bad.json()).code], [422, "invalid-settings"]);

    const r = await fetch(`${c.url}/v1/evaluations`, {
      method: "POST",
      headers: auth,
      body: body(2),
    });
    assertEquals(r.status, 202);
    const url = c.url + r.headers.get("location");
    const e = await waitFor(
      async () => {
        const j = await (await fetch(url, { headers: auth })).json();
        return j.job.status === "done" ? j : undefined;
      },
      "the exact white-box evaluation",
      120_000,
    );
    assertEquals([e.report.mode, e.report.n], ["adaptive", 4]);
    // verdicts with seed + 1 (never used by the attack), re-scoring with seed + 1 + r
    assertEquals(e.report.rescored_with_fresh_noise.seeds, [8]);
    const { seededSubset, gather } = await import("../lib/fashion_mnist.ts");
    const dir = c.env.TMDC_MODELS_DIR;
    const model = new OnnxDiffusionModel(await loadDiffusionBundle(join(dir, "tiny-diffusion")), {
      threads: 1,
    });
    const t = await loadTest(REPO);
    const set = gather(t, seededSubset(t.n, 4, 3));
    const full: DCSettings = {
      stages: settings.stages,
      gridSize: 4,
      tRange: [0, 1000],
      error: "l2",
      timesteps: "even",
      seed: 7,
      posteriorScale: 1,
    };
    const v = await classifyImages(model, set.images, 4, full);
    const right = v.filter((x, i) => x.label === set.labels[i]).length;
    assertEquals(e.report.clean_accuracy, right / 4);
  },
);
