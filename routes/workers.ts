/**
 * The worker WebSocket endpoint: authenticates workers, hands out leased work units,
 * renews leases on heartbeats, records results. State lives in KV (store/), so a
 * restarted frontend or a lost worker loses nothing: expired leases are leased again.
 */
import type { Store } from "../store/kv_store.ts";
import type { EvaluationJob, FinetuneJob, Unit, Verdict } from "../store/records.ts";
import {
  fromBase64,
  type FrontendMessage,
  toBase64,
  WorkerMessage,
} from "../gpu-worker/protocol.ts";
import type { Registry } from "./registry.ts";
import { bestCheckpoint } from "../lib/finetune.ts";

interface Peer {
  socket: WebSocket;
  id: string;
  bundles: string[];
  provider: string;
  threads: number;
  connectedAt: string;
  idle: boolean;
  busy: number;
}

export interface DispatcherOptions {
  workerToken: string;
  leaseMs: number;
  heartbeatMs: number;
}

export class Dispatcher {
  readonly peers = new Set<Peer>();
  #waiters = new Map<string, Set<() => void>>();

  constructor(
    readonly store: Store,
    readonly registry: Registry,
    readonly opts: DispatcherOptions,
  ) {}

  /** Wake idle workers: new units were queued. */
  wake(): void {
    for (const p of this.peers) if (p.idle) send(p.socket, { type: "wake" });
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
    return [...this.peers].map(({ id, bundles, provider, threads, connectedAt, idle, busy }) => ({
      id,
      bundles,
      provider,
      threads,
      connectedAt,
      idle,
      unitsInFlight: busy,
    }));
  }

  /** Attach a freshly upgraded socket. */
  accept(socket: WebSocket): void {
    let peer: Peer | undefined;
    // A peer's messages are handled one after another, in the order sent: a fine-tune's last
    // checkpoint must be stored before its result closes the unit.
    let queue = Promise.resolve();
    socket.onmessage = (ev) => {
      queue = queue.then(() => onMessage(ev));
    };
    const onMessage = async (ev: MessageEvent) => {
      let msg: WorkerMessage;
      try {
        msg = WorkerMessage.parse(JSON.parse(String(ev.data)));
      } catch (e) {
        send(socket, {
          type: "error",
          message: `malformed message: ${(e as Error).message.slice(0, 200)}`,
        });
        return;
      }
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
          const known = msg.worker.bundles.filter((b) => this.registry.bundles.has(b));
          peer = {
            socket,
            id: msg.worker.id,
            bundles: known,
            provider: msg.worker.provider,
            threads: msg.worker.threads,
            connectedAt: new Date().toISOString(),
            idle: true,
            busy: 0,
          };
          this.peers.add(peer);
          send(socket, {
            type: "welcome",
            leaseMs: this.opts.leaseMs,
            heartbeatMs: this.opts.heartbeatMs,
          });
          return;
        }
        await this.#handle(peer, msg);
      } catch (e) {
        console.error(`[workers] ${peer?.id ?? "?"}: ${(e as Error).stack}`);
        send(socket, { type: "error", message: "internal error" });
      }
    };
    socket.onclose = () => {
      if (peer) this.peers.delete(peer);
    };
    socket.onerror = () => {};
  }

  async #handle(peer: Peer, msg: WorkerMessage): Promise<void> {
    switch (msg.type) {
      case "hello":
        return;
      case "take": {
        const leased = await this.store.leaseNext(peer.id, peer.bundles, this.opts.leaseMs);
        if (!leased) {
          peer.idle = true;
          send(peer.socket, { type: "none" });
          return;
        }
        const { unit, job } = leased;
        peer.idle = false;
        peer.busy++;
        if (job.kind === "evaluate") return await this.#sendEvalUnit(peer, job, unit);
        if (job.kind === "finetune") return await this.#sendFinetuneUnit(peer, job, unit);
        const pixels = unit.input && await this.store.getBlob(unit.input.blob);
        if (!pixels) throw new Error(`unit ${job.id}/${unit.idx} has no pixels`);
        send(peer.socket, {
          type: "unit",
          jobId: job.id,
          idx: unit.idx,
          token: unit.lease!.token,
          kind: "classify",
          bundle: job.bundle,
          adapter: job.adapter,
          lora: await this.#lora(job.adapter),
          settings: job.settings,
          pixels: toBase64(pixels),
        });
        return;
      }
      case "heartbeat":
        await this.store.renewLease(msg.jobId, msg.idx, msg.token, this.opts.leaseMs, msg.progress);
        return;
      case "result": {
        peer.busy = Math.max(0, peer.busy - 1);
        const verdict = await this.#verdict(peer, msg);
        if (
          verdict &&
          (await this.store.completeUnit(msg.jobId, msg.idx, msg.token, verdict)) === "ok"
        ) {
          this.#notify(msg.jobId);
        }
        return;
      }
      case "eval-result": {
        peer.busy = Math.max(0, peer.busy - 1);
        const job = await this.store.getJob(msg.jobId);
        const unit = await this.store.getUnit(msg.jobId, msg.idx);
        if (job?.kind !== "evaluate" || unit?.lease?.token !== msg.token) return; // stale or unknown
        const fresh = msg.items.filter((it) => it.adv !== null);
        await this.store.putAdversarial(
          job.evaluation.setKey,
          fresh.map((it) => ({ index: it.index, label: it.label, pixels: fromBase64(it.adv!) })),
        );
        const result = {
          items: msg.items.map(({ adv: _adv, ...it }) => it),
          perAttack: msg.perAttack,
          reusedAdversarial: fresh.length === 0,
          computeMs: msg.computeMs,
          worker: { id: peer.id, provider: msg.provider },
        };
        if ((await this.store.completeEvalUnit(msg.jobId, msg.idx, msg.token, result)) === "ok") {
          this.#notify(msg.jobId);
        }
        return;
      }
      case "ft-checkpoint": {
        const job = await this.store.getJob(msg.jobId);
        if (job?.kind !== "finetune") return;
        const id = await this.store.putCheckpoint(msg, {
          bundle: job.bundle,
          jobId: job.id,
          owner: job.owner,
          step: msg.step,
          loss: msg.loss,
          validation: msg.validation,
          finetune: job.finetune,
        }, fromBase64(msg.state));
        if (id !== "stale") this.#notify(msg.jobId);
        return;
      }
      case "ft-result": {
        peer.busy = Math.max(0, peer.busy - 1);
        const cps = await this.store.listCheckpoints(msg.jobId);
        const best = bestCheckpoint(cps);
        const unit = await this.store.getUnit(msg.jobId, msg.idx);
        if (unit?.lease?.token !== msg.token) return;
        if (!best) {
          await this.store.failUnit(msg.jobId, msg.idx, msg.token, "no checkpoint was stored");
        } else {
          await this.store.completeFinetuneUnit(msg.jobId, msg.idx, msg.token, {
            best: best.id,
            bestStep: best.step,
            checkpoints: cps.map((a) => ({
              step: a.step,
              adapter: a.id,
              loss: a.loss,
              validation: a.validation,
            })),
            computeMs: msg.computeMs,
            worker: { id: peer.id, provider: msg.provider },
          });
        }
        this.#notify(msg.jobId);
        return;
      }
      case "fail":
        peer.busy = Math.max(0, peer.busy - 1);
        await this.store.failUnit(msg.jobId, msg.idx, msg.token, msg.error.slice(0, 2000));
        this.#notify(msg.jobId);
        return;
    }
  }

  async #lora(adapter: string | null): Promise<string | null> {
    if (!adapter) return null;
    const rec = await this.store.getAdapter(adapter);
    if (!rec) throw new Error(`adapter ${adapter} vanished`);
    return toBase64(await this.store.adapterLora(rec));
  }

  /** A fine-tune: resume from its last stored checkpoint, if any. */
  async #sendFinetuneUnit(peer: Peer, job: FinetuneJob, unit: Unit): Promise<void> {
    const last = await this.store.latestCheckpoint(job.id);
    send(peer.socket, {
      type: "finetune-unit",
      jobId: job.id,
      idx: unit.idx,
      token: unit.lease!.token,
      bundle: job.bundle,
      settings: job.settings,
      finetune: job.finetune,
      resume: last ? { step: last.rec.step, state: toBase64(last.state) } : null,
    });
  }

  /** An evaluation shard: reuse the stored adversarial examples when the whole shard has them. */
  async #sendEvalUnit(peer: Peer, job: EvaluationJob, unit: Unit): Promise<void> {
    const ev = job.evaluation;
    const indices = unit.shard ?? [];
    const stored = await Promise.all(indices.map((i) => this.store.getAdversarial(ev.setKey, i)));
    let adv: string[] | null = null;
    if (stored.every((r) => r !== null)) {
      const blobs = await Promise.all(stored.map((r) => this.store.getBlob(r!.blob)));
      if (blobs.every((b) => b !== null)) adv = blobs.map((b) => toBase64(b!));
    }
    let images: { pixels: string[]; labels: number[] } | null = null;
    if (ev.dataset.name === "uploaded") {
      const ds = await this.store.getDataset(ev.dataset.id);
      const all = ds && await this.store.getBlob(ds.pixelsBlob);
      if (!ds || !all) throw new Error(`dataset ${ev.dataset.id} vanished`);
      const bytesPer = all.length / ds.n;
      images = {
        pixels: indices.map((i) => toBase64(all.subarray(i * bytesPer, (i + 1) * bytesPer))),
        labels: indices.map((i) => ds.labels[i]),
      };
    }
    send(peer.socket, {
      type: "eval-unit",
      jobId: job.id,
      idx: unit.idx,
      token: unit.lease!.token,
      evaluation: {
        attack: ev.attack,
        source: ev.source,
        target: ev.target,
        dataset: ev.dataset,
        rescore: ev.rescore,
        attackScope: ev.attackScope,
      },
      settings: job.settings,
      lora: await this.#lora(job.adapter),
      indices,
      images,
      adv,
    });
  }

  /** Build the stored verdict from the worker's numbers and the frontend's own records. */
  async #verdict(
    peer: Peer,
    msg: Extract<WorkerMessage, { type: "result" }>,
  ): Promise<Verdict | null> {
    const job = await this.store.getJob(msg.jobId);
    const unit = (await this.store.listUnits(msg.jobId)).find((u) => u.idx === msg.idx);
    const bundle = job && this.registry.bundles.get(job.bundle);
    if (!job || !unit || !bundle || unit.lease?.token !== msg.token) return null;
    const r = msg.result;
    const names = bundle.manifest.classes;
    if (r.label < 0 || r.label >= names.length || r.meanError.length !== names.length) return null;
    const eliminatedAt = names.map((_, c) => {
      const k = r.survivors.findIndex((alive) => !alive.includes(c));
      return k < 0 ? null : k + 1;
    });
    if (!unit.input) return null;
    const { blob: _blob, ...input } = unit.input;
    return {
      id: `${job.id}.${unit.idx}`,
      jobId: job.id,
      index: unit.idx,
      input,
      label: r.label,
      className: names[r.label],
      classNames: [...names],
      posterior: r.posterior,
      meanError: r.meanError,
      stdError: r.stdError,
      timestepsScored: r.count,
      eliminatedAtStage: eliminatedAt,
      unetCalls: r.unetCalls,
      settings: job.settings,
      bundle: job.bundle,
      adapter: job.adapter,
      worker: { id: peer.id, provider: r.provider },
      timings: {
        queuedMs: Date.now() - Date.parse(job.createdAt) - r.computeMs,
        computeMs: r.computeMs,
      },
      createdAt: new Date().toISOString(),
    };
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
