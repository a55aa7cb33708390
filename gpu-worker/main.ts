/**
 * GPU worker: a separate process that connects to the frontend's WebSocket, announces
 * its bundles and execution provider, leases work units, heartbeats while it computes,
 * and returns results. Reconnects with exponential backoff; whatever it held when it
 * vanished goes back to the queue when the lease expires.
 *
 *   TMDC_FRONTEND_URL   http://127.0.0.1:8787     TMDC_WORKER_TOKEN  (required)
 *   TMDC_MODELS_DIR     ./models                  TMDC_WORKER_ID     hostname-pid
 *   TMDC_PROVIDERS      cuda,cpu                  TMDC_WORKER_THREADS 0 (= onnxruntime default)
 */
import { join } from "node:path";
import { config } from "../config.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import type { ClassifierManifest } from "../lib/bundle_manifest.ts";
import { OnnxClassifier, OnnxDiffusionModel } from "./onnx_model.ts";
import { loadBundle } from "../lib/bundle.ts";
import { loraTensors, runEvalUnit, type WorkerModels } from "./eval_unit.ts";
import { runFinetuneUnit } from "./finetune_unit.ts";
import { fromBase64, FrontendMessage, type WorkerMessage } from "./protocol.ts";

const VERSION = "0.1.0";

async function loadModels(dir: string): Promise<WorkerModels> {
  const models = new Map<string, OnnxDiffusionModel>();
  const classifiers = new Map<string, OnnxClassifier>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.isDirectory) continue;
    try {
      const b = await loadBundle(join(dir, e.name));
      if (b.manifest.kind === "classifier") {
        const opts = { threads: config.workerThreads, providers: config.workerProviders };
        classifiers.set(
          b.id,
          new OnnxClassifier(b as typeof b & { manifest: ClassifierManifest }, opts),
        );
        continue;
      }
      models.set(
        b.id,
        new OnnxDiffusionModel(b as typeof b & { manifest: DiffusionManifest }, {
          threads: config.workerThreads,
          providers: config.workerProviders,
        }),
      );
    } catch (err) {
      console.error(`[worker] skipping bundle ${e.name}: ${(err as Error).message}`);
    }
  }
  return { diffusion: models, classifiers };
}

export async function runWorker(signal?: AbortSignal): Promise<void> {
  const token = config.workerToken;
  if (!token) throw new Error("TMDC_WORKER_TOKEN is not set");
  const id = Deno.env.get("TMDC_WORKER_ID") ?? `${Deno.hostname()}-${Deno.pid}`;
  const models = await loadModels(config.modelsDir);
  if (models.diffusion.size === 0) throw new Error(`no diffusion bundle under ${config.modelsDir}`);
  const url = config.frontendUrl.replace(/^http/, "ws") + "/v1/workers/ws";
  let backoff = 500;
  while (!signal?.aborted) {
    const started = Date.now();
    await session(url, token, id, models, signal).catch((e) =>
      console.error(`[worker] ${e.message}`)
    );
    if (Date.now() - started > 10_000) backoff = 500;
    console.error(`[worker] disconnected; reconnecting in ${backoff} ms`);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 15_000);
  }
}

function session(
  url: string,
  token: string,
  id: string,
  all: WorkerModels,
  signal?: AbortSignal,
): Promise<void> {
  const models = all.diffusion;
  const bundles = [...all.diffusion.keys(), ...all.classifiers.keys()];
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const send = (m: WorkerMessage) =>
      ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify(m));
    let heartbeatMs = 5000;
    let busy = false;
    let poll: ReturnType<typeof setTimeout> | undefined;
    const take = () => {
      if (!busy) send({ type: "take" });
    };
    /** Run one leased unit: heartbeat (with progress) while it computes, report, take the next. */
    const leased = async (
      ref: { jobId: string; idx: number; token: string },
      progress: () => { calls: number; total: number } | undefined,
      work: () => Promise<Record<string, unknown>>,
    ) => {
      busy = true;
      const unit = { jobId: ref.jobId, idx: ref.idx, token: ref.token };
      const hb = setInterval(
        () => send({ type: "heartbeat", ...unit, progress: progress() }),
        heartbeatMs,
      );
      try {
        send({ ...(await work()), ...unit } as WorkerMessage);
      } catch (e) {
        send({ type: "fail", ...unit, error: (e as Error).message });
      } finally {
        clearInterval(hb);
        busy = false;
        take();
      }
    };
    signal?.addEventListener("abort", () => ws.close());
    ws.onopen = () => {
      const provider = [...models.values()][0].provider;
      send({
        type: "hello",
        token,
        worker: {
          id,
          bundles,
          provider,
          threads: config.workerThreads,
          version: VERSION,
        },
      });
    };
    ws.onmessage = async (ev) => {
      const parsed = FrontendMessage.safeParse(JSON.parse(String(ev.data)));
      if (!parsed.success) return console.error("[worker] malformed message from frontend");
      const msg = parsed.data;
      switch (msg.type) {
        case "welcome":
          heartbeatMs = msg.heartbeatMs;
          console.error(`[worker] ${id} connected to ${url} with ${bundles.join(", ")}`);
          take();
          break;
        case "wake":
          take();
          break;
        case "none":
          clearTimeout(poll);
          poll = setTimeout(take, 2000); // also picks up units whose lease expired
          break;
        case "error":
          console.error(`[worker] frontend says: ${msg.message}`);
          break;
        case "eval-unit":
          await leased(
            msg,
            () => undefined,
            async () => ({ type: "eval-result", ...(await runEvalUnit(all, msg)) }),
          );
          break;
        case "finetune-unit": {
          let step = msg.resume?.step ?? 0;
          await leased(
            msg,
            () => ({ calls: step, total: msg.finetune.hyper.steps }),
            () => runFinetuneUnit(all, msg, send, (k) => (step = k)),
          );
          break;
        }
        case "unit": {
          let progress = { calls: 0, total: 0 };
          await leased(msg, () => progress, async () => {
            const model = models.get(msg.bundle);
            if (!model) throw new Error(`this worker does not hold bundle ${msg.bundle}`);
            const lora = msg.lora ? loraTensors(model, msg.lora) : undefined;
            const bytes = fromBase64(msg.pixels);
            const pixels = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
            const t0 = performance.now();
            const [r] = await classifyImages(model, pixels, 1, msg.settings, {
              lora,
              onProgress: (calls, total) => progress = { calls, total },
            });
            return {
              type: "result",
              result: {
                label: r.label,
                errorSum: Array.from(r.errorSum),
                errorSumSq: Array.from(r.errorSumSq),
                count: Array.from(r.count),
                posterior: Array.from(r.posterior),
                meanError: Array.from(r.meanError),
                stdError: Array.from(r.stdError),
                unetCalls: r.unetCalls,
                survivors: r.survivors,
                computeMs: performance.now() - t0,
                provider: model.provider,
              },
            };
          });
          break;
        }
      }
    };
    ws.onclose = () => {
      clearTimeout(poll);
      resolve();
    };
    ws.onerror = (e) =>
      reject(new Error(`websocket error: ${(e as ErrorEvent).message ?? "connection failed"}`));
  });
}

if (import.meta.main) {
  await runWorker();
}
