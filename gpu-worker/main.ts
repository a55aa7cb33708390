/**
 * GPU worker: a separate process that connects to the frontend's WebSocket, announces its
 * bundles and how many units it runs at once, leases units, heartbeats while they compute and
 * returns results. Reconnects with exponential backoff; whatever it held when it vanished goes
 * back to the queue when the lease expires.
 *
 * This thread only talks: units run in compute slots (gpu-worker/slot.ts, Web Workers), so
 * heartbeat timers here fire on time however long a unit blocks its own thread. The worker holds
 * at most `capacity` units, spread over its slots (the least busy first); units in one slot share
 * UNet calls (lib/packed_model.ts). It asks (`take`) only with room for a unit and no request
 * outstanding, and the frontend enforces the same count.
 *
 *   TMDC_FRONTEND_URL   http://127.0.0.1:8787     TMDC_WORKER_TOKEN    (required)
 *   TMDC_MODELS_DIR     ./models                  TMDC_WORKER_ID       hostname-pid
 *   TMDC_PROVIDERS      cuda,cpu                  TMDC_WORKER_THREADS  0 (= onnxruntime default)
 *   TMDC_WORKER_CAPACITY 1 (units at once)     TMDC_WORKER_SLOTS    1 (compute threads)
 */
import { config } from "../config.ts";
import { isDiffusion, type LoadedBundle, scanBundles } from "../lib/bundle.ts";
import {
  FrontendMessage,
  type FrontendUnit,
  type Progress,
  type UnitRef,
  WorkerMessage,
} from "./protocol.ts";
import type { SlotReply, SlotRequest } from "./slot.ts";
// The `ws` client, not Deno's own: Deno's WebSocket client leaves Nagle's algorithm on, and a
// result frame written in two parts then waits for the frontend's delayed ACK (~40 ms per
// verdict on loopback, measured); `ws` sets TCP_NODELAY on its socket.
// @ts-types="@types/ws"
import { WebSocket } from "ws";

const VERSION = "0.2.0";
/** after `none`, ask again this often: picks up units whose lease expired elsewhere */
const POLL_MS = 2000;
/** hello is repeated this often until the frontend answers (see `session`) */
const HELLO_RETRY_MS = 500;

interface Running {
  ref: UnitRef;
  progress?: Progress;
  heartbeat: ReturnType<typeof setInterval>;
}

// with the lease token: a unit leased again to this worker is another run than the stale one
const refKey = (r: UnitRef) => `${r.jobId}/${r.idx}/${r.token}`;

/** One compute thread and the units it runs. */
class Slot {
  thread!: Worker;
  readonly running = new Map<string, Running>();
  ready!: Promise<string>;

  constructor(
    /** units this slot runs at once */
    readonly units: number,
    readonly bundles: LoadedBundle[],
    readonly onReply: (slot: Slot, r: SlotReply) => void,
    readonly onCrash: (slot: Slot, error: string) => void,
  ) {
    this.start();
  }

  start(): void {
    this.thread = new Worker(new URL("./slot.ts", import.meta.url), { type: "module" });
    this.ready = new Promise((resolve) => {
      this.thread.onmessage = (ev: MessageEvent<SlotReply>) => {
        if (ev.data.type === "ready") resolve(ev.data.provider);
        else this.onReply(this, ev.data);
      };
    });
    // An exception that escapes a runner's promise chain: the unit fails, the slot restarts.
    this.thread.onerror = (ev) => {
      ev.preventDefault();
      this.thread.terminate();
      this.onCrash(this, ev.message);
      this.start();
    };
    this.post({
      type: "init",
      bundles: this.bundles,
      options: { threads: config.workerThreads, providers: config.workerProviders },
    });
  }

  post(m: SlotRequest): void {
    this.thread.postMessage(m);
  }
}

export class GpuWorker {
  readonly slots: Slot[];
  #socket?: WebSocket;
  #heartbeatMs = 5000;
  /** a `take` was sent and neither a unit nor `none` has answered it yet */
  #takeOutstanding = false;
  /** the socket of the moment was welcomed: until then the frontend accepts only hello */
  #welcomed = false;
  /** results, fails and checkpoints said while no socket was welcomed: sent at the next welcome */
  #outbox: WorkerMessage[] = [];
  #poll?: ReturnType<typeof setTimeout>;
  provider = "cpu";

  constructor(
    readonly id: string,
    readonly bundles: LoadedBundle[],
    readonly capacity: number,
    slots = 1,
  ) {
    const n = Math.max(1, Math.min(slots, capacity));
    this.slots = Array.from(
      { length: n },
      (_, k) =>
        new Slot(
          // capacity spread over the slots: the first ones take the remainder
          Math.floor(capacity / n) + (k < capacity % n ? 1 : 0),
          bundles,
          (s, r) => this.#onSlot(s, r),
          (s, e) => this.#onCrash(s, e),
        ),
    );
  }

  async ready(): Promise<void> {
    this.provider = (await Promise.all(this.slots.map((s) => s.ready)))[0] ?? "cpu";
  }

  #send(m: WorkerMessage): void {
    const ws = this.#socket;
    const open = ws?.readyState === WebSocket.OPEN;
    if (open && (this.#welcomed || m.type === "hello")) ws.send(JSON.stringify(m));
    // Between sockets (or before the welcome, when anything but hello closes the socket as
    // unauthorized) an answer waits: its lease may still be ours. A heartbeat is worth only its
    // moment, and #take asks only once welcomed.
    else if (m.type === "result" || m.type === "fail" || m.type === "checkpoint") {
      this.#outbox.push(m);
    }
  }

  /** The slot with the most room, if any has room. */
  #free(): Slot | undefined {
    let best: Slot | undefined;
    for (const s of this.slots) {
      const room = s.units - s.running.size;
      if (room > 0 && (!best || room > best.units - best.running.size)) best = s;
    }
    return best;
  }

  #take(): void {
    clearTimeout(this.#poll);
    if (
      this.#takeOutstanding || !this.#free() || !this.#welcomed ||
      this.#socket?.readyState !== WebSocket.OPEN
    ) {
      return;
    }
    this.#takeOutstanding = true;
    this.#send({ type: "take" });
  }

  #start(slot: Slot, unit: FrontendUnit): void {
    const ref = { jobId: unit.jobId, idx: unit.idx, token: unit.token };
    const running: Running = {
      ref,
      heartbeat: setInterval(
        () => this.#send({ type: "heartbeat", ...ref, progress: running.progress }),
        this.#heartbeatMs,
      ),
    };
    slot.running.set(refKey(ref), running);
    slot.post({ type: "run", unit });
  }

  #finish(slot: Slot, ref: UnitRef, m: WorkerMessage): void {
    const running = slot.running.get(refKey(ref));
    if (running) clearInterval(running.heartbeat);
    slot.running.delete(refKey(ref));
    // Sent on the socket of the moment: after a reconnect the lease may still be ours.
    this.#send(m);
    this.#take();
  }

  #onSlot(slot: Slot, r: SlotReply): void {
    if (r.type === "progress") {
      const running = slot.running.get(refKey(r.ref));
      if (running) running.progress = r.progress;
    } else if (r.type === "send") this.#send(r.msg);
    else if (r.type === "done") this.#finish(slot, r.ref, r.msg);
  }

  #onCrash(slot: Slot, error: string): void {
    console.error(`[worker] compute slot crashed: ${error}`);
    for (const { ref } of [...slot.running.values()]) {
      this.#finish(slot, ref, { type: "fail", ...ref, error: `worker crashed: ${error}` });
    }
  }

  #onMessage(text: string, url: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return console.error("[worker] a frame from the frontend is not JSON");
    }
    const parsed = FrontendMessage.safeParse(raw);
    if (!parsed.success) {
      console.error(`[worker] malformed message from the frontend: ${parsed.error.message}`);
      // A unit we cannot read still holds a lease (and a slot at the frontend): give it back.
      const ref = raw as { type?: string; jobId?: string; idx?: number; token?: string };
      if (ref?.type === "unit" && ref.jobId && typeof ref.idx === "number" && ref.token) {
        this.#takeOutstanding = false;
        this.#send({
          type: "fail",
          jobId: ref.jobId,
          idx: ref.idx,
          token: ref.token,
          error: `the worker could not read the unit: ${parsed.error.message.slice(0, 500)}`,
        });
        this.#take();
      }
      return;
    }
    const msg = parsed.data;
    switch (msg.type) {
      case "welcome":
        this.#heartbeatMs = msg.heartbeatMs;
        this.#welcomed = true;
        for (const m of this.#outbox.splice(0)) this.#send(m);
        console.error(
          `[worker] ${this.id} connected to ${url} with ${
            this.bundles.map((b) => b.id).join(", ")
          }; ${this.capacity} unit(s) at once in ${this.slots.length} slot(s)`,
        );
        this.#take();
        return;
      case "wake":
        return this.#take();
      case "none":
        this.#takeOutstanding = false;
        clearTimeout(this.#poll);
        this.#poll = setTimeout(() => this.#take(), POLL_MS);
        return;
      case "error":
        return console.error(`[worker] frontend says: ${msg.message}`);
      case "cancel": {
        const ref = { jobId: msg.jobId, idx: msg.idx, token: msg.token };
        const slot = this.slots.find((s) => s.running.has(refKey(ref)));
        if (slot) {
          console.error(`[worker] unit ${ref.jobId}/${ref.idx} cancelled: stopping it`);
          slot.post({ type: "cancel", ref });
        }
        return;
      }
      case "unit": {
        this.#takeOutstanding = false;
        const slot = this.#free();
        if (!slot) {
          // The frontend counts our leases and must not send this; fail it rather than queue
          // work we cannot heartbeat for.
          this.#send({
            type: "fail",
            jobId: msg.jobId,
            idx: msg.idx,
            token: msg.token,
            error: `worker ${this.id} was sent a unit beyond its capacity ${this.capacity}`,
          });
          return;
        }
        this.#start(slot, msg);
        return this.#take();
      }
    }
  }

  /** One connection, until it closes. */
  session(url: string, token: string, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      this.#socket = ws;
      this.#takeOutstanding = false;
      this.#welcomed = false;
      const abort = () => ws.close();
      signal?.addEventListener("abort", abort);
      const hello = () =>
        this.#send({
          type: "hello",
          token,
          worker: {
            id: this.id,
            bundles: this.bundles.map((b) => b.id),
            provider: this.provider,
            threads: config.workerThreads,
            version: VERSION,
            capacity: this.capacity,
          },
        });
      // Said again until welcomed: Deno 2.9's WebSocket upgrade over a node:http socket can
      // drop a frame that arrives while it takes the socket over (the first one, right after
      // the 101). A repeated hello is harmless: the frontend ignores it once authenticated.
      let helloAgain: ReturnType<typeof setInterval> | undefined;
      ws.onopen = () => {
        hello();
        helloAgain = setInterval(hello, HELLO_RETRY_MS);
      };
      ws.onmessage = (ev) => {
        clearInterval(helloAgain);
        this.#onMessage(String(ev.data), url);
      };
      ws.onclose = () => {
        clearInterval(helloAgain);
        clearTimeout(this.#poll);
        signal?.removeEventListener("abort", abort);
        resolve();
      };
      ws.onerror = (e) => reject(new Error(`websocket error: ${e.message || "connection failed"}`));
    });
  }
}

/** Exit when standard input reaches its end: the parent that holds the other end is gone. */
async function exitWithParent(): Promise<void> {
  try {
    for await (const _ of Deno.stdin.readable) { /* the parent never writes */ }
  } catch { /* closed */ }
  console.error("[worker] the frontend that started this worker is gone; exiting");
  Deno.exit(0);
}

export async function runWorker(signal?: AbortSignal): Promise<void> {
  const token = config.workerToken;
  if (!token) throw new Error("TMDC_WORKER_TOKEN is not set");
  if (config.workerExitWithParent) exitWithParent();
  const id = Deno.env.get("TMDC_WORKER_ID") ?? `${Deno.hostname()}-${Deno.pid}`;
  const { bundles, rejected } = await scanBundles(config.modelsDir);
  for (const r of rejected) console.error(`[worker] skipping bundle ${r.dir}: ${r.error}`);
  if (!bundles.some(isDiffusion)) throw new Error(`no diffusion bundle under ${config.modelsDir}`);
  const capacity = config.workerCapacity;
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new Error("TMDC_WORKER_CAPACITY must be a positive integer");
  }
  if (!Number.isInteger(config.workerSlots) || config.workerSlots < 1) {
    throw new Error("TMDC_WORKER_SLOTS must be a positive integer");
  }
  const worker = new GpuWorker(id, bundles, capacity, config.workerSlots);
  await worker.ready();
  const url = config.frontendUrl.replace(/^http/, "ws") + "/v1/workers/ws";
  let backoff = 500;
  while (!signal?.aborted) {
    const started = Date.now();
    await worker.session(url, token, signal).catch((e) => console.error(`[worker] ${e.message}`));
    if (Date.now() - started > 10_000) backoff = 500;
    console.error(`[worker] disconnected; reconnecting in ${backoff} ms`);
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 15_000);
  }
}

if (import.meta.main) {
  await runWorker();
}
