/**
 * `bench latency`: single-image verdict latency through HTTP against the engine's own compute
 * time for that image. Starts the real service (frontend + its local worker process) on a
 * fresh KV file, sends one-image classify requests one after another (each waits for its
 * verdict), and compares each request's wall time with the compute time the worker measured
 * around `classifyImages` for it. With `concurrency` > 1, that many clients send at once to a
 * worker that runs `capacity` units at once (their UNet rows packed into shared calls), and the
 * report's throughput is the verdicts per second over the timed requests.
 */
import { join } from "node:path";
import { config } from "../config.ts";
import { encodePng } from "../lib/image_decode.ts";
import { FASHION_MNIST, gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { Store } from "../store/kv_store.ts";
import { Progress } from "../cli/progress.ts";
import { machine, writeReport } from "./common.ts";

export interface LatencyOptions {
  n: number;
  seed: number;
  warmup: number;
  json: string;
  /** the local worker's TMDC_WORKER_CAPACITY */
  capacity: number;
  /** requests in flight at once */
  concurrency: number;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * (s.length - 1) + 0.5))];
};

export async function httpLatency(o: LatencyOptions, argv: readonly string[]) {
  const dir = await Deno.makeTempDir({ prefix: "tmdc-latency-" });
  const kvPath = join(dir, "kv.sqlite");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const store = await Store.open(kvPath);
  const { key } = await store.createApiKey("latency");
  store.close();
  const frontend = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--unstable-kv",
      "--config",
      join(config.root, "deno.json"),
      join(config.root, "main.ts"),
    ],
    env: {
      TMDC_PORT: String(port),
      TMDC_KV_PATH: kvPath,
      TMDC_WORKER_ID: "latency-worker",
      TMDC_WORKER_CAPACITY: String(o.capacity),
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}`;
  const progress = new Progress("latency");
  try {
    for (let i = 0;; i++) {
      const h = await fetch(`${url}/v1/health`).then((r) => r.json()).catch(() => null);
      if (h?.workers > 0) break;
      if (i > 600) throw new Error("the service did not start with a worker within 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
    const test = await loadTest(config.root);
    const set = gather(test, seededSubset(test.n, o.n + o.warmup, o.seed));
    const D = set.images.length / set.n;
    const rows: { latencyMs: number; computeMs: number; unetCalls: number }[] = [];
    progress.start("one-image requests", o.n + o.warmup, "requests");
    const pngs = await Promise.all(
      Array.from(
        { length: set.n },
        (_, i) => encodePng(set.images.subarray(i * D, (i + 1) * D), FASHION_MNIST.shape),
      ),
    );
    let sent = 0;
    const request = async (i: number) => {
      const png = pngs[i];
      const t0 = performance.now();
      const r = await fetch(`${url}/v1/classify`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "image/png" },
        body: png.slice(),
      });
      const body = await r.json();
      const latencyMs = performance.now() - t0;
      if (r.status !== 200) {
        throw new Error(`classify answered ${r.status}: ${JSON.stringify(body)}`);
      }
      const v = body.verdicts[0];
      // the first requests warm the worker's sessions up: not counted
      if (i >= o.warmup) {
        rows.push({ latencyMs, computeMs: v.timings.computeMs, unetCalls: v.unetCalls });
      }
      progress.update(++sent);
    };
    for (let i = 0; i < o.warmup; i++) await request(i);
    let next = o.warmup;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: o.concurrency }, async () => {
      while (next < set.n) await request(next++);
    }));
    const wallS = (performance.now() - t0) / 1000;
    progress.end();
    const lat = rows.map((r) => r.latencyMs);
    const comp = rows.map((r) => r.computeMs);
    const ratio = rows.map((r) => r.latencyMs / r.computeMs);
    const report = {
      benchmark: "http-latency",
      what:
        "single-image verdict latency through HTTP (POST /v1/classify, waiting for the verdict) vs the worker's compute time for the same image (around classifyImages)",
      command: `deno task cli bench latency ${argv.join(" ")}`,
      n: rows.length,
      warmup: o.warmup,
      subset:
        `images ${o.warmup}… of seededSubset(10000, n + warmup, ${o.seed}), Fashion-MNIST test`,
      settings: "the bundle's dc_default",
      worker_capacity: o.capacity,
      concurrency: o.concurrency,
      throughput_images_per_second: rows.length / wallS,
      latency_ms: {
        p50: quantile(lat, 0.5),
        p95: quantile(lat, 0.95),
        mean: lat.reduce((a, v) => a + v, 0) / lat.length,
      },
      compute_ms: {
        p50: quantile(comp, 0.5),
        p95: quantile(comp, 0.95),
        mean: comp.reduce((a, v) => a + v, 0) / comp.length,
      },
      latency_over_compute: { p50: quantile(ratio, 0.5), p95: quantile(ratio, 0.95) },
      mean_unet_calls: rows.reduce((a, r) => a + r.unetCalls, 0) / rows.length,
      per_request: rows,
      machine: machine(),
    };
    await writeReport(o.json, report, 1);
    return report;
  } finally {
    frontend.kill("SIGTERM");
    await frontend.status;
  }
}
