/**
 * Real processes: the frontend (main.ts) and GPU workers (gpu-worker/main.ts) as separate
 * Deno processes over a real WebSocket, a real KV file, the tiny real bundle and real
 * Fashion-MNIST PNGs.
 */
import { join } from "node:path";
import { assert_, assertEquals } from "./assert.ts";
import { REPO } from "./helpers.ts";
import { fashionPngs, tinyModelsDir } from "./service_helpers.ts";
import { classifyImages, type DCSettings } from "../lib/diffusion_classifier.ts";
import { decodeImage } from "../lib/image_decode.ts";
import { loadBundle, OnnxDiffusionModel } from "../gpu-worker/onnx_model.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import type { Unit } from "../store/kv_store.ts";

const DENO = Deno.execPath();
const TOKEN = "e2e-worker-token";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

class Cluster {
  frontend?: Deno.ChildProcess;
  workers = new Map<string, Deno.ChildProcess>();
  constructor(readonly env: Record<string, string>, readonly url: string) {}

  static async create(): Promise<Cluster> {
    const dir = await Deno.makeTempDir({ prefix: "tmdc-e2e-" });
    const port = freePort();
    const env = {
      TMDC_PORT: String(port),
      TMDC_KV_PATH: join(dir, "kv.sqlite"),
      TMDC_MODELS_DIR: await tinyModelsDir(),
      TMDC_DEFAULT_BUNDLE: "tiny-diffusion",
      TMDC_WORKER_TOKEN: TOKEN,
      TMDC_LOCAL_WORKER: "0",
      TMDC_LEASE_MS: "1500",
      TMDC_HEARTBEAT_MS: "300",
      TMDC_WORKER_THREADS: "1",
      TMDC_PROVIDERS: "cpu",
      TMDC_FRONTEND_URL: `http://127.0.0.1:${port}`,
    };
    return new Cluster(env, `http://127.0.0.1:${port}`);
  }

  spawn(script: string, extra: Record<string, string> = {}): Deno.ChildProcess {
    return new Deno.Command(DENO, {
      args: [
        "run",
        "--allow-all",
        "--unstable-kv",
        "--config",
        join(REPO, "deno.json"),
        join(REPO, script),
      ],
      env: { ...this.env, ...extra },
      stdout: "null",
      stderr: Deno.env.get("TMDC_TEST_LOGS") ? "inherit" : "null",
    }).spawn();
  }

  async startFrontend(): Promise<void> {
    this.frontend = this.spawn("main.ts");
    for (let i = 0; i < 200; i++) {
      try {
        const r = await fetch(`${this.url}/v1/health`);
        await r.body?.cancel();
        if (r.ok) return;
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("frontend did not start");
  }

  async stopFrontend(): Promise<void> {
    this.frontend!.kill("SIGKILL");
    await this.frontend!.status;
  }

  startWorker(id: string): void {
    this.workers.set(id, this.spawn("gpu-worker/main.ts", { TMDC_WORKER_ID: id }));
  }

  async killWorker(id: string): Promise<void> {
    const w = this.workers.get(id)!;
    w.kill("SIGKILL");
    await w.status;
    this.workers.delete(id);
  }

  async apiKey(): Promise<string> {
    const out = await new Deno.Command(DENO, {
      args: [
        "run",
        "--allow-all",
        "--unstable-kv",
        "--config",
        join(REPO, "deno.json"),
        join(REPO, "cli.ts"),
        "keys",
        "create",
        "--name",
        "e2e",
      ],
      env: this.env,
    }).output();
    return JSON.parse(new TextDecoder().decode(out.stdout)).key;
  }

  async shutdown(): Promise<void> {
    for (const id of [...this.workers.keys()]) await this.killWorker(id);
    if (this.frontend) await this.stopFrontend().catch(() => {});
  }
}

async function waitFor<T>(f: () => Promise<T | undefined>, what: string, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const SMALL = { stages: [{ nSamples: 4, keep: 2 }, { nSamples: 8, keep: 1 }], gridSize: 8 };
// ~2,000 UNet calls per image: long enough to kill a worker in the middle of a job.
const SLOW = { stages: [{ nSamples: 100, keep: 5 }, { nSamples: 250, keep: 1 }], gridSize: 250 };

Deno.test({
  name: "e2e: upload a real PNG, get a verdict, restart the frontend, read it again",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const c = await Cluster.create();
    try {
      await c.startFrontend();
      const key = await c.apiKey();
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
    } finally {
      await c.shutdown();
    }
  },
});

Deno.test({
  name:
    "e2e: worker killed mid-job and frontend restarted; the job completes with every image classified exactly once",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const c = await Cluster.create();
    try {
      await c.startFrontend();
      const key = await c.apiKey();
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
      const kv = await Deno.openKv(c.env.TMDC_KV_PATH);
      const units: Unit[] = [];
      for await (const e of kv.list<Unit>({ prefix: ["unit", final.id] })) units.push(e.value);
      kv.close();
      assert_(units.every((u) => u.status === "done"));
      assert_(units.some((u) => u.attempts === 2), "the interrupted unit was leased a second time");

      // The verdicts equal an in-process run on the same pixels (nothing mixed up on the way).
      const b = await loadBundle(join(c.env.TMDC_MODELS_DIR, "tiny-diffusion"));
      const model = new OnnxDiffusionModel(b as typeof b & { manifest: DiffusionManifest }, {
        threads: 1,
      });
      const settings = verdicts[0].settings as DCSettings;
      for (const v of verdicts) {
        const d = await decodeImage(images[v.index].png, model.imageShape, 1e6);
        const [ref] = await classifyImages(model, d.pixels, 1, settings);
        assertEquals(v.label, ref.label);
        assertEquals(v.meanError, Array.from(ref.meanError));
      }
    } finally {
      await c.shutdown();
    }
  },
});

Deno.test({
  name:
    "e2e: an evaluation runs on a worker; a second target reuses the stored adversarial examples; PNGs download",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const c = await Cluster.create();
    try {
      await c.startFrontend();
      const key = await c.apiKey();
      const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
      c.startWorker("w1");
      const body = (target: string) => ({
        target: { bundle: target, settings: SMALL },
        source: { kind: "surrogate", bundle: "resnet8-fmnist" },
        attack: { attack: "pgd", norm: "linf", eps: 0.1, steps: 5 },
        dataset: { name: "fashion-mnist-test", n: 12, seed: 3 },
        shardSize: 5,
      });
      const run = async (target: string) => {
        const r = await fetch(`${c.url}/v1/evaluations`, {
          method: "POST",
          headers: auth,
          body: JSON.stringify(body(target)),
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
      const onDc = await run("tiny-diffusion");
      assertEquals([onDc.job.total, onDc.job.done], [3, 3]); // shards of 5, 5, 2
      assertEquals(onDc.report.n, 12);
      assertEquals(onDc.report.mode, "transfer");
      assertEquals(onDc.report.reused_adversarial_examples, false);
      assert_(onDc.report.robust_accuracy <= onDc.report.clean_accuracy);
      assertEquals(onDc.report.attack.steps, 5);

      const onSurrogate = await run("resnet8-fmnist");
      assertEquals(onSurrogate.report.mode, "white-box");
      assertEquals(onSurrogate.report.reused_adversarial_examples, true);
      assertEquals(onSurrogate.report.adversarial_set, onDc.report.adversarial_set);

      const idx = (await import("../lib/fashion_mnist.ts")).seededSubset(10000, 12, 3)[0];
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
    } finally {
      await c.shutdown();
    }
  },
});
