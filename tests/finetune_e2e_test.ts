/**
 * Truth Maximization as a job through real processes: the worker is SIGKILLed after a
 * checkpoint is stored, a second worker resumes from it, and the final adapter equals an
 * uninterrupted in-process run with the same seed. Then the adapter is used for a verdict.
 */
import { join } from "node:path";
import { assert_, assertEquals } from "./assert.ts";
import { relErr, REPO } from "./helpers.ts";
import { clusterTest, waitFor } from "./cluster.ts";
import { fashionPngs } from "./service_helpers.ts";
import { OnnxClassifier, OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import { loadClassifierBundle, loadDiffusionBundle } from "../lib/bundle.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import type { AttackConfig } from "../lib/attacks/config.ts";
import { loadTrainSplit } from "../lib/fashion_mnist.ts";
import { type FinetuneSpec, runFinetune, validationSet } from "../lib/finetune.ts";
import { initState, packState } from "../lib/truth_max.ts";
import { Store } from "../store/kv_store.ts";
import type { AdapterRecord } from "../store/records.ts";
import { defaultSettings } from "../lib/dc_settings.ts";

const STEPS = 120;
const REQUEST = {
  bundle: "tiny-diffusion",
  seed: 11,
  hyper: { lr: 2e-3, warmupSteps: 5, batchSize: 4, steps: STEPS },
  attack: { attack: "pgd", norm: "linf", eps: 0.05, steps: 3, seed: 0 },
  source: { kind: "surrogate", bundle: "resnet8-fmnist" },
  checkpoints: [10, 20, STEPS],
  validation: { n: 4, seed: 0 },
};

clusterTest(
  "e2e: a fine-tune's worker is killed after a checkpoint; another resumes it and ends with the uninterrupted run's adapter",
  async (c, key) => {
    const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    const r = await fetch(`${c.url}/v1/finetunes`, {
      method: "POST",
      body: JSON.stringify(REQUEST),
      headers: auth,
    });
    assertEquals(r.status, 202);
    const url = c.url + r.headers.get("location");
    const view = async () => await (await fetch(url, { headers: auth })).json();

    c.startWorker("w1");
    const first = await waitFor(
      async () => {
        const v = await view();
        return v.checkpoints.length >= 1 ? v : undefined;
      },
      "the first checkpoint",
      120_000,
    );
    await c.killWorker("w1");
    assert_(!first.final, "the run must still be going when its worker is killed");
    c.startWorker("w2");
    const done = await waitFor(
      async () => {
        const v = await view();
        return v.job.status === "done" || v.job.status === "failed" ? v : undefined;
      },
      "the fine-tune to finish",
      240_000,
    );
    assertEquals(done.job.status, "done");
    assertEquals(done.attempts, 2);
    assertEquals(done.checkpoints.map((p: { step: number }) => p.step), [10, 20, STEPS]);
    assert_(done.best_adapter !== null, "a best checkpoint is marked");
    const finalId = done.checkpoints.at(-1).adapter;

    // the adapter's record is served; its state equals an uninterrupted in-process run
    const rec = await (await fetch(`${c.url}/v1/adapters/${finalId}`, { headers: auth })).json();
    assertEquals([rec.step, rec.bundle.startsWith("tiny-diffusion")], [STEPS, true]);
    // every checkpoint is listed among the team's adapters, two a page
    const listed: string[] = [];
    for (let cursor = "";;) {
      const page = await (await fetch(
        `${c.url}/v1/adapters?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`,
        { headers: auth },
      )).json();
      listed.push(...page.adapters.map((a: { id: string }) => a.id));
      if (!page.next) break;
      cursor = page.next;
    }
    assertEquals(
      listed.toSorted(),
      done.checkpoints.map((p: { adapter: string }) => p.adapter).toSorted(),
    );
    const store = await Store.open(c.env.TMDC_KV_PATH);
    const stored = (await store.getAdapter(finalId))!;
    const bytes = (await store.getBlob(stored.stateBlob))!;
    store.close();

    const reference = await uninterrupted(c.env.TMDC_MODELS_DIR, stored);
    const got = new Float32Array(bytes.buffer);
    assertEquals(got.length, reference.length);
    const e = relErr(got, reference);
    assert_(e <= 1e-6, `resumed adapter differs from the uninterrupted run: rel ${e}`);
    assert_(got.some((v, i) => v !== 0 && i > got.length / 3), "optimizer state stored");

    // the adapter is usable by id in a verdict, and recorded there
    const [img] = await fashionPngs(1);
    const fd = new FormData();
    fd.append("image", new Blob([img.png.slice()], { type: "image/png" }), "x.png");
    fd.append("options", JSON.stringify({ adapter: finalId }));
    const v = await fetch(`${c.url}/v1/classify`, {
      method: "POST",
      body: fd,
      headers: { authorization: auth.authorization },
    });
    assertEquals(v.status, 200);
    assertEquals((await v.json()).verdicts[0].adapter, finalId);
  },
);

async function uninterrupted(modelsDir: string, rec: AdapterRecord): Promise<Float32Array> {
  const b = await loadDiffusionBundle(join(modelsDir, "tiny-diffusion"));
  const model = new OnnxDiffusionModel(b, {
    threads: 1,
    providers: ["cpu"],
  });
  const sb = await loadClassifierBundle(join(modelsDir, "tiny-surrogate"));
  const sur = new OnnxClassifier(sb, {
    threads: 1,
  });
  const f = rec.finetune;
  const spec: FinetuneSpec = {
    hyper: f.hyper,
    seed: f.seed,
    attack: f.attack as unknown as AttackConfig,
    checkpoints: [],
    validation: f.validation,
    dc: defaultSettings(b.manifest),
  };
  const [train, val] = await Promise.all([
    loadTrainSplit(REPO, "train"),
    loadTrainSplit(REPO, "validation"),
  ]);
  const oracle = classifierOracle(sur);
  const valSet = await validationSet(
    val,
    { ...spec, validation: { n: 1, seed: 0 } },
    oracle,
    model.imageShape,
  );
  const s = await runFinetune(
    model,
    oracle,
    train,
    valSet,
    spec,
    initState(model.loraLayout, spec.seed),
    {
      onCheckpoint: () => Promise.resolve(),
    },
  );
  return new Float32Array(packState(s).buffer);
}

clusterTest(
  "e2e: a running fine-tune is cancelled; its worker stops at the next heartbeat and serves the next job",
  async (c, key) => {
    const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    const r = await fetch(`${c.url}/v1/finetunes`, {
      method: "POST",
      // long enough that only a cancellation ends it within the test
      body: JSON.stringify({
        ...REQUEST,
        hyper: { ...REQUEST.hyper, steps: 100_000 },
        checkpoints: [100_000],
      }),
      headers: auth,
    });
    assertEquals(r.status, 202);
    const id = (await r.json()).job.id;
    c.startWorker("w1");
    await waitFor(async () => {
      const j = await (await fetch(`${c.url}/v1/jobs/${id}`, { headers: auth })).json();
      return j.status === "running" && j.progress > 0 ? j : undefined;
    }, "the fine-tune to make progress");
    const del = await fetch(`${c.url}/v1/jobs/${id}`, { method: "DELETE", headers: auth });
    assertEquals([del.status, (await del.json()).status], [200, "cancelled"]);
    // the worker (capacity 1) is free again only if it stopped the fine-tune
    const [{ png }] = await fashionPngs(1);
    const fd = new FormData();
    fd.append("image", new Blob([png.slice()], { type: "image/png" }), "x.png");
    const t0 = Date.now();
    const cl = await fetch(`${c.url}/v1/classify?wait=false`, {
      method: "POST",
      body: fd,
      headers: { authorization: `Bearer ${key}` },
    });
    const cid = (await cl.json()).job.id;
    const done = await waitFor(
      async () => {
        const j = await (await fetch(`${c.url}/v1/jobs/${cid}`, { headers: auth })).json();
        return j.status === "done" ? j : undefined;
      },
      "the next job to be served",
      30_000,
    );
    assertEquals(done.status, "done");
    const job = await (await fetch(`${c.url}/v1/jobs/${id}`, { headers: auth })).json();
    assertEquals(job.status, "cancelled");
    console.log(`worker free again ${Date.now() - t0} ms after the cancellation`);
  },
);
