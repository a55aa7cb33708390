/**
 * A compute slot: a Web Worker (its own thread and event loop) that holds the ONNX Runtime
 * models and runs the units the main thread gives it — several at once, whose UNet rows share
 * model calls (lib/packed_model.ts: the gate counts the units running here). The worker's main
 * thread keeps the WebSocket and the heartbeat timers; it starts TMDC_WORKER_SLOTS slots.
 *
 * Why a thread: onnxruntime-node's `session.run` is async, but everything between two calls
 * (attack steps, elimination, noise, packing) is synchronous JS, and an adaptive attack or a
 * fine-tune spends seconds there. On one event loop those stretches delay heartbeat timers past
 * the lease, and the frontend hands the unit to someone else. In a slot they cannot:
 * tests/cluster_load_test.ts measures the heartbeat gaps during a unit (worst 205–224 ms at a
 * 200 ms period here); with a 3 s busy loop added to the classify runner it was 216 ms.
 * onnxruntime-node loads in a Deno Web Worker (a Node-API addon, context-aware); each slot
 * opens its own sessions, so N slots cost N copies of the models' memory; units packed into one
 * slot share one copy.
 */
/// <reference lib="deno.worker" />
import type { LoadedBundle } from "../lib/bundle.ts";
import { openWorkerModels, type WorkerModels } from "./models.ts";
import type { PackingGate } from "../lib/packed_model.ts";
import type { RuntimeOptions } from "./onnx_model.ts";
import type { CheckpointMsg, FrontendUnit, Progress, UnitRef, WorkerMessage } from "./protocol.ts";
import { runUnit } from "./runners.ts";

/** main thread → slot */
export type SlotRequest =
  | { type: "init"; bundles: LoadedBundle[]; options: RuntimeOptions }
  | { type: "run"; unit: FrontendUnit }
  /** the frontend cancelled the unit's job: it stops at its next progress report */
  | { type: "cancel"; ref: UnitRef };

/** slot → main thread */
export type SlotReply =
  | { type: "ready"; provider: string }
  | { type: "progress"; ref: UnitRef; progress: Progress }
  | { type: "send"; msg: CheckpointMsg }
  /** the unit's result, or a `fail` saying why it could not run */
  | { type: "done"; ref: UnitRef; msg: WorkerMessage };

let models: WorkerModels | undefined;
const gate: PackingGate = { active: 0 };
const reply = (m: SlotReply) => self.postMessage(m);
const refKey = (r: UnitRef) => `${r.jobId}/${r.idx}/${r.token}`;
/** units told to stop: their runner throws at its next progress report or checkpoint */
const cancelled = new Set<string>();

self.onmessage = async (ev: MessageEvent<SlotRequest>) => {
  const req = ev.data;
  if (req.type === "cancel") {
    cancelled.add(refKey(req.ref));
    return;
  }
  if (req.type === "init") {
    models = openWorkerModels(req.bundles, req.options, gate);
    reply({ type: "ready", provider: [...models.diffusion.values()][0]?.base.provider ?? "cpu" });
    return;
  }
  const u = req.unit;
  const ref = { jobId: u.jobId, idx: u.idx, token: u.token };
  // only units whose UNet rows go through the packed epsLoss count (a fine-tune or a DiffPure
  // unit never queues there: counting it would make the others wait a turn at every call)
  const packs = (u.kind === "classify" && u.settings !== null) ||
    (u.kind === "evaluation" && u.spec.target.kind === "dc");
  if (packs) gate.active++;
  try {
    if (!models) throw new Error("compute slot used before init");
    let last = 0;
    const msg = await runUnit(models, u, {
      // a classification reports after every UNet batch: pass on a few per second, and the end
      progress: (progress) => {
        if (cancelled.has(refKey(ref))) throw new Error("cancelled: the job was cancelled");
        const now = performance.now();
        if (now - last < 200 && progress.calls < progress.total) return;
        last = now;
        reply({ type: "progress", ref, progress });
      },
      send: (msg) => {
        if (cancelled.has(refKey(ref))) throw new Error("cancelled: the job was cancelled");
        reply({ type: "send", msg });
      },
    });
    reply({ type: "done", ref, msg });
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    reply({ type: "done", ref, msg: { type: "fail", ...ref, error } });
  } finally {
    if (packs) gate.active--;
    cancelled.delete(refKey(ref));
  }
};
