/**
 * The dispatcher: a lease broker between the job store and the GPU workers connected over the
 * WebSocket `/v1/workers/ws` (protocol: gpu-worker/protocol.ts). It authenticates workers,
 * hands out leased units, renews leases on heartbeats and records results through the unit
 * module of each job kind (service/units/). State lives in KV (store/), so a restarted frontend
 * or a lost worker loses nothing: expired leases are leased again.
 *
 * What keeps it from over-committing or wedging:
 *  - a worker says how many units it runs at once (`capacity`); the dispatcher counts the
 *    leases it handed each peer and answers a `take` beyond that with `none`;
 *  - `wake` goes only to peers with a free slot, and not again while one is unanswered;
 *  - a unit that cannot be handed out (its blob gone, its adapter unreadable, KV failing) is
 *    failed at once, its slot freed, and the take goes on to the next unit. Failing, not
 *    re-queuing: most such errors are in the stored job and a retry would only repeat them,
 *    three lease periods later; a transient one (KV "disk is full") costs one unit its user
 *    can resubmit, never the worker. If even failing it errs, its lease expires: a retry;
 *  - results are checked against their unit before they are stored; a result that does not
 *    fit fails the unit (logged), and every result or fail frees its slot whatever happens;
 *  - a socket that does not authenticate within `helloTimeoutMs` is closed.
 */
import type { Store } from "../store/kv_store.ts";
import { config } from "../config.ts";
import { cleanImages } from "./clean_images.ts";
import type { Job, Unit } from "../store/records.ts";
import { type FrontendMessage, type UnitRef, WorkerMessage } from "../gpu-worker/protocol.ts";
import { type BundleLookup, type Outcome, type UnitDeps, unitModule } from "./units/mod.ts";

export interface DispatcherOptions {
  workerToken: string;
  leaseMs: number;
  heartbeatMs: number;
  /** a socket that has not said hello by then is closed (default 5000) */
  helloTimeoutMs?: number;
  /** where Fashion-MNIST is, for checking evaluation results (default: config.root) */
  dataRoot?: string;
  /** each result or fail a worker sent and what became of it (metrics) */
  onResult?: (kind: Job["kind"], outcome: Outcome["status"], msg?: WorkerMessage) => void;
}

interface Peer {
  socket: WebSocket;
  id: string;
  bundles: string[];
  provider: string;
  threads: number;
  capacity: number;
  connectedAt: string;
  /** units leased to this peer and not yet answered, by `jobId/idx` */
  leases: Map<string, UnitRef>;
  /** when a `wake` was sent that no `take` has answered yet */
  wokenAt: number | null;
}

/** A wake still unanswered after this is presumed lost: the peer may be woken again. */
const WAKE_RETRY_MS = 5000;
/** Units one `take` may try to hand out when the ones it leases cannot be dispatched. */
const DISPATCH_TRIES = 8;

const leaseKey = (r: { jobId: string; idx: number }) => `${r.jobId}/${r.idx}`;

export class Dispatcher {
  readonly peers = new Set<Peer>();
  #waiters = new Map<string, Set<() => void>>();
  readonly #deps: UnitDeps;

  constructor(
    readonly store: Store,
    readonly registry: BundleLookup,
    readonly opts: DispatcherOptions,
  ) {
    this.#deps = { store, registry, images: cleanImages(store, opts.dataRoot ?? config.root) };
  }

  /** New units were queued: wake the peers that have a free slot. */
  wake(): void {
    const now = Date.now();
    for (const p of this.peers) {
      if (p.leases.size >= p.capacity) continue;
      if (p.wokenAt !== null && now - p.wokenAt < WAKE_RETRY_MS) continue;
      p.wokenAt = now;
      send(p.socket, { type: "wake" });
    }
  }

  /** Resolves when the job finishes or the timeout passes (true = finished). */
  async waitForJob(jobId: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const job = await this.store.getJob(jobId);
      if (!job || job.status === "done" || job.status === "failed") return true;
      await new Promise<void>((resolve) => {
        const set = this.#waiters.get(jobId) ?? new Set();
        this.#waiters.set(jobId, set);
        const done = () => {
          clearTimeout(timer);
          set.delete(done);
          if (set.size === 0) this.#waiters.delete(jobId);
          resolve();
        };
        const timer = setTimeout(done, Math.min(1000, Math.max(0, deadline - Date.now())));
        set.add(done);
      });
    }
    return false;
  }

  #notify(jobId: string): void {
    for (const f of this.#waiters.get(jobId) ?? []) f();
  }

  summary() {
    return [...this.peers].map((p) => ({
      id: p.id,
      bundles: p.bundles,
      provider: p.provider,
      threads: p.threads,
      capacity: p.capacity,
      connectedAt: p.connectedAt,
      idle: p.leases.size === 0,
      unitsInFlight: p.leases.size,
    }));
  }

  /**
   * Attach a freshly upgraded socket. `onHello` runs once the worker has authenticated (the
   * HTTP server stops counting the connection as one that may be dropped to make room).
   */
  accept(socket: WebSocket, hooks: { onHello?: () => void } = {}): void {
    let peer: Peer | undefined;
    const helloTimer = setTimeout(() => {
      if (peer) return;
      send(socket, { type: "error", message: "no hello in time" });
      socket.close(4408, "hello timeout");
    }, this.opts.helloTimeoutMs ?? 10_000);
    // A peer's messages are handled one after another, in the order sent: a fine-tune's last
    // checkpoint must be stored before its result closes the unit.
    let queue = Promise.resolve();
    socket.onmessage = (ev) => {
      queue = queue.then(() => onMessage(ev));
    };
    const onMessage = async (ev: MessageEvent) => {
      let raw: unknown;
      try {
        raw = JSON.parse(String(ev.data));
      } catch {
        return send(socket, { type: "error", message: "a frame is not JSON" });
      }
      const parsed = WorkerMessage.safeParse(raw);
      if (!parsed.success) {
        const why = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`)
          .join("; ").slice(0, 500);
        send(socket, { type: "error", message: `malformed message: ${why}` });
        if (peer) await this.#malformed(peer, raw, why);
        return;
      }
      const msg = parsed.data;
      try {
        if (!peer) {
          if (msg.type !== "hello" || !timingSafeEqual(msg.token, this.opts.workerToken)) {
            send(socket, {
              type: "error",
              message: "the first message must be hello with a valid worker token",
            });
            socket.close(4401, "unauthorized");
            return;
          }
          clearTimeout(helloTimer);
          peer = {
            socket,
            id: msg.worker.id,
            bundles: msg.worker.bundles.filter((b) => this.registry.bundles.has(b)),
            provider: msg.worker.provider,
            threads: msg.worker.threads,
            capacity: msg.worker.capacity,
            connectedAt: new Date().toISOString(),
            leases: new Map(),
            wokenAt: null,
          };
          this.peers.add(peer);
          hooks.onHello?.();
          send(socket, {
            type: "welcome",
            leaseMs: this.opts.leaseMs,
            heartbeatMs: this.opts.heartbeatMs,
          });
          return;
        }
        await this.#handle(peer, msg);
      } catch (e) {
        console.error(`[dispatcher] ${peer?.id ?? "?"}: ${(e as Error).stack}`);
        send(socket, { type: "error", message: "internal error" });
      }
    };
    socket.onclose = () => {
      clearTimeout(helloTimer);
      // its leases run out in the store and go back to the queue
      if (peer) this.peers.delete(peer);
    };
    socket.onerror = () => {};
  }

  async #handle(peer: Peer, msg: WorkerMessage): Promise<void> {
    switch (msg.type) {
      case "hello":
        return;
      case "take":
        peer.wokenAt = null;
        return await this.#take(peer);
      case "heartbeat": {
        const ref = { jobId: msg.jobId, idx: msg.idx, token: msg.token };
        if (
          await this.store.renewLease(
            msg.jobId,
            msg.idx,
            msg.token,
            this.opts.leaseMs,
            msg.progress,
          )
        ) {
          return;
        }
        // A lease that is no longer ours: when its job was cancelled, tell the worker to stop.
        if ((await this.store.getUnit(msg.jobId, msg.idx))?.status === "cancelled") {
          send(peer.socket, { type: "cancel", ...ref });
        }
        return;
      }
      case "checkpoint":
        return await this.#checkpoint(peer, msg);
      case "result":
        return await this.#settle(
          peer,
          msg,
          (job, unit) =>
            msg.kind === unitModule(job).kind
              ? unitModule(job).complete(this.#deps, job, unit, msg, { id: peer.id })
              : Promise.resolve({
                status: "rejected",
                reason: `a result of kind ${msg.kind} for a job of kind ${job.kind}`,
              }),
          msg,
        );
      case "fail":
        return await this.#settle(peer, msg, async () => {
          await this.store.failUnit(msg.jobId, msg.idx, msg.token, msg.error.slice(0, 2000));
          return { status: "ok" };
        }, msg);
    }
  }

  /** Hand the peer one unit if it has a free slot and there is work for it; else `none`. */
  async #take(peer: Peer): Promise<void> {
    for (let tries = 0; tries < DISPATCH_TRIES && peer.leases.size < peer.capacity; tries++) {
      if (peer.socket.readyState !== WebSocket.OPEN) return; // gone: lease nothing for it
      const leased = await this.store.leaseNext(peer.id, peer.bundles, this.opts.leaseMs)
        .catch((e) => {
          console.error(`[dispatcher] leasing for ${peer.id} failed: ${(e as Error).message}`);
          return null;
        });
      if (!leased) break;
      const { job, unit } = leased;
      const ref = { jobId: job.id, idx: unit.idx, token: unit.lease!.token };
      peer.leases.set(leaseKey(ref), ref);
      let msg: FrontendMessage;
      try {
        msg = await unitModule(job).message(this.#deps, job, unit, ref);
      } catch (e) {
        peer.leases.delete(leaseKey(ref));
        const why = `the unit could not be dispatched: ${(e as Error).message}`;
        console.error(`[dispatcher] ${leaseKey(ref)} for ${peer.id}: ${why}`);
        await this.store.failUnit(ref.jobId, ref.idx, ref.token, why).catch((e2) =>
          console.error(`[dispatcher] failing ${leaseKey(ref)}: ${(e2 as Error).message}`)
        );
        this.#notify(ref.jobId);
        continue;
      }
      // A closed socket drops the peer; the unit's lease runs out and it is leased again.
      send(peer.socket, msg);
      return;
    }
    send(peer.socket, { type: "none" });
  }

  /**
   * A result or fail for a unit: the peer's slot is freed first (the worker has finished with
   * the unit whatever becomes of its answer), then the answer is checked against the unit's
   * current lease and stored by the unit module.
   */
  async #settle(
    peer: Peer,
    ref: UnitRef,
    store: (job: Job, unit: Unit) => Promise<Outcome>,
    /** the message itself, when it parsed (for onResult) */
    msg?: WorkerMessage,
  ): Promise<void> {
    const held = peer.leases.get(leaseKey(ref));
    if (held?.token === ref.token) peer.leases.delete(leaseKey(ref));
    try {
      const job = await this.store.getJob(ref.jobId);
      const unit = await this.store.getUnit(ref.jobId, ref.idx);
      if (!job || unit?.status !== "leased" || unit.lease?.token !== ref.token) {
        if (job) this.opts.onResult?.(job.kind, "stale", msg);
        return;
      }
      const outcome = await store(job, unit);
      this.opts.onResult?.(job.kind, outcome.status, msg);
      if (outcome.status === "rejected") await this.#reject(peer, ref, outcome.reason);
    } finally {
      this.#notify(ref.jobId);
    }
  }

  async #checkpoint(
    peer: Peer,
    msg: Extract<WorkerMessage, { type: "checkpoint" }>,
  ): Promise<void> {
    const job = await this.store.getJob(msg.jobId);
    const unit = await this.store.getUnit(msg.jobId, msg.idx);
    if (!job || unit?.status !== "leased" || unit.lease?.token !== msg.token) return; // stale
    const module = unitModule(job);
    const outcome = module.checkpoint
      ? await module.checkpoint(this.#deps, job, unit, msg)
      : { status: "rejected" as const, reason: `a ${job.kind} job makes no checkpoints` };
    if (outcome.status === "rejected") await this.#reject(peer, msg, outcome.reason);
    else if (outcome.status === "ok") this.#notify(msg.jobId);
  }

  async #reject(peer: Peer, ref: UnitRef, reason: string): Promise<void> {
    console.error(`[dispatcher] rejected a result for ${leaseKey(ref)} from ${peer.id}: ${reason}`);
    await this.store.failUnit(
      ref.jobId,
      ref.idx,
      ref.token,
      `the worker's result was rejected: ${reason}`,
    );
  }

  /** A message that does not parse: if it names one of the peer's units, that unit fails. */
  async #malformed(peer: Peer, raw: unknown, why: string): Promise<void> {
    const r = raw as Partial<UnitRef> & { type?: unknown };
    if (typeof r?.jobId !== "string" || typeof r.idx !== "number") return;
    const held = peer.leases.get(leaseKey({ jobId: r.jobId, idx: r.idx }));
    if (!held || held.token !== r.token || (r.type !== "result" && r.type !== "fail")) return;
    await this.#settle(peer, held, () => {
      return Promise.resolve({ status: "rejected", reason: `malformed ${r.type}: ${why}` });
    });
  }
}

function send(socket: WebSocket, msg: FrontendMessage): void {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
}

function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
