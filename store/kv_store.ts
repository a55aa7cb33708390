/**
 * Everything the service keeps in Deno KV, and the only module that knows the key layout.
 *
 *   ["apikey", sha256(key)]          → ApiKeyRecord
 *   ["job", jobId]                   → Job
 *   ["active", createdAt, jobId]     → true            (jobs with work left, FIFO)
 *   ["unit", jobId, idx]             → Unit            (one image of a job)
 *   ["verdict", jobId, idx]          → Verdict
 *   ["evalres", jobId, idx]          → EvalShardResult (one shard of an evaluation)
 *   ["advset", setKey, index]        → AdvRecord: an adversarial example, reused by every
 *                                      evaluation with the same (attack, source, subset)
 *   ["adapter", adapterId]           → AdapterRecord: one Truth-Maximization checkpoint
 *   ["ftckpt", jobId, step]          → adapterId       (a fine-tune's checkpoints, by step)
 *   ["ftres", jobId, idx]            → FinetuneResult  (written when the fine-tune ends)
 *   ["dataset", datasetId]           → DatasetRecord: an uploaded labelled set (pixels in a blob)
 *   ["blob", blobId, "meta"|chunk]   → chunks of ≤ 60,000 bytes (KV values are ≤ 64 KiB)
 *
 * State changes are atomic with version checks (at most 3 checks per atomic, so a
 * self-hosted denokv works too). A job becomes visible to workers only after all its
 * units and blobs are written ("creating" → "queued"); `recover()` at start-up deletes
 * jobs a crash left in "creating", so nothing is stored half-way.
 */
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import type {
  AdapterRecord,
  AdvRecord,
  ApiKeyRecord,
  DatasetRecord,
  EvalShardResult,
  FinetuneResult,
  Job,
  NewJob,
  Unit,
  UnitInput,
  Verdict,
} from "./records.ts";

const CHUNK = 60_000;
const MAX_ATTEMPTS = 3;
const now = () => new Date().toISOString();
export const sha256hex = (s: string | Uint8Array) => createHash("sha256").update(s).digest("hex");

export class Store {
  constructor(readonly kv: Deno.Kv) {}

  static async open(path?: string): Promise<Store> {
    // a local file's folder is created on first use; URLs (KV Connect) are opened as they are
    if (path && !/^https?:/.test(path) && path !== ":memory:") {
      await Deno.mkdir(dirname(path), { recursive: true });
    }
    return new Store(await Deno.openKv(path));
  }

  close(): void {
    this.kv.close();
  }

  // ---- API keys (only hashes are stored) ----

  async createApiKey(name: string): Promise<{ key: string; record: ApiKeyRecord }> {
    const key = "tmdc_" + btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))))
      .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    const record = { id: crypto.randomUUID(), name, createdAt: now() };
    await this.kv.set(["apikey", sha256hex(key)], record);
    return { key, record };
  }

  async verifyApiKey(key: string): Promise<ApiKeyRecord | null> {
    return (await this.kv.get<ApiKeyRecord>(["apikey", sha256hex(key)])).value;
  }

  async countApiKeys(): Promise<number> {
    let n = 0;
    for await (const _ of this.kv.list({ prefix: ["apikey"] })) n++;
    return n;
  }

  // ---- blobs ----

  async putBlob(bytes: Uint8Array): Promise<string> {
    const id = crypto.randomUUID();
    const chunks = Math.ceil(bytes.length / CHUNK);
    for (let start = 0; start < chunks; start += 10) {
      const op = this.kv.atomic();
      for (let k = start; k < Math.min(chunks, start + 10); k++) {
        op.set(["blob", id, k], bytes.subarray(k * CHUNK, (k + 1) * CHUNK));
      }
      await commitOrThrow(op);
    }
    await this.kv.set(["blob", id, "meta"], {
      size: bytes.length,
      chunks,
      sha256: sha256hex(bytes),
    });
    return id;
  }

  async getBlob(id: string): Promise<Uint8Array | null> {
    const meta =
      (await this.kv.get<{ size: number; chunks: number; sha256: string }>(["blob", id, "meta"]))
        .value;
    if (!meta) return null;
    const out = new Uint8Array(meta.size);
    for (let k = 0; k < meta.chunks; k++) {
      const c = (await this.kv.get<Uint8Array>(["blob", id, k])).value;
      if (!c) throw new Error(`blob ${id} is missing chunk ${k}`);
      out.set(c, k * CHUNK);
    }
    if (sha256hex(out) !== meta.sha256) throw new Error(`blob ${id} is corrupted`);
    return out;
  }

  async deleteBlob(id: string): Promise<void> {
    for await (const e of this.kv.list({ prefix: ["blob", id] })) await this.kv.delete(e.key);
  }

  // ---- jobs ----

  /**
   * Write a job and its units (uploaded images, or shards of dataset indices); it is visible
   * to workers only once everything is stored.
   */
  async createJob(
    fields: NewJob,
    inputs: ({ pixels: Uint8Array; input: Omit<UnitInput, "blob"> } | { shard: number[] })[],
  ): Promise<Job> {
    const id = crypto.randomUUID();
    const t = now();
    const job: Job = {
      ...fields,
      id,
      status: "creating",
      total: inputs.length,
      done: 0,
      failed: 0,
      createdAt: t,
      updatedAt: t,
    };
    await this.kv.set(["job", id], job);
    try {
      for (let i = 0; i < inputs.length; i++) {
        const item = inputs[i];
        const unit: Unit = {
          jobId: id,
          idx: i,
          status: "queued",
          attempts: 0,
          lease: null,
          progress: null,
        };
        if ("shard" in item) unit.shard = item.shard;
        else unit.input = { ...item.input, blob: await this.putBlob(item.pixels) };
        await this.kv.set(["unit", id, i], unit);
      }
      const queued = { ...job, status: "queued" as const, updatedAt: now() };
      await commitOrThrow(
        this.kv.atomic().set(["job", id], queued).set(["active", job.createdAt, id], true),
      );
      return queued;
    } catch (e) {
      await this.deleteJob(id);
      throw e;
    }
  }

  async getJob(id: string): Promise<Job | null> {
    return (await this.kv.get<Job>(["job", id])).value;
  }

  /** Every job of a kind (a full scan: deployments here hold thousands of jobs, not millions). */
  async listJobs(kind: Job["kind"]): Promise<Job[]> {
    const out: Job[] = [];
    for await (const e of this.kv.list<Job>({ prefix: ["job"] })) {
      if (e.value.kind === kind) out.push(e.value);
    }
    return out;
  }

  async listUnits(jobId: string): Promise<Unit[]> {
    const out: Unit[] = [];
    for await (const e of this.kv.list<Unit>({ prefix: ["unit", jobId] })) out.push(e.value);
    return out;
  }

  async getVerdict(jobId: string, idx: number): Promise<Verdict | null> {
    return (await this.kv.get<Verdict>(["verdict", jobId, idx])).value;
  }

  async listVerdicts(jobId: string): Promise<Verdict[]> {
    const out: Verdict[] = [];
    for await (const e of this.kv.list<Verdict>({ prefix: ["verdict", jobId] })) out.push(e.value);
    return out;
  }

  async deleteJob(id: string): Promise<void> {
    const job = await this.getJob(id);
    for await (const e of this.kv.list<Unit>({ prefix: ["unit", id] })) {
      if (e.value.input) await this.deleteBlob(e.value.input.blob);
      await this.kv.delete(e.key);
    }
    for await (const e of this.kv.list({ prefix: ["verdict", id] })) await this.kv.delete(e.key);
    for await (const e of this.kv.list({ prefix: ["evalres", id] })) await this.kv.delete(e.key);
    for await (const e of this.kv.list({ prefix: ["ftres", id] })) await this.kv.delete(e.key);
    if (job) await this.kv.delete(["active", job.createdAt, id]);
    await this.kv.delete(["job", id]);
  }

  /** Start-up: remove jobs interrupted while being created. Returns their ids. */
  async recover(): Promise<string[]> {
    const dropped: string[] = [];
    for await (const e of this.kv.list<Job>({ prefix: ["job"] })) {
      if (e.value.status === "creating") {
        await this.deleteJob(e.value.id);
        dropped.push(e.value.id);
      }
    }
    return dropped;
  }

  // ---- leasing (work units for workers) ----

  /**
   * Lease the oldest available unit of a job on one of `bundles`: queued, or leased
   * with an expired lease (its worker is gone). Each lease gets a fresh token; results
   * are accepted only with the current token, so every unit completes exactly once.
   */
  async leaseNext(
    worker: string,
    bundles: readonly string[],
    leaseMs: number,
  ): Promise<{ unit: Unit; job: Job } | null> {
    const t = Date.now();
    for await (const a of this.kv.list<boolean>({ prefix: ["active"] })) {
      const jobId = a.key[2] as string;
      const jobEntry = await this.kv.get<Job>(["job", jobId]);
      const job = jobEntry.value;
      if (!job || !bundles.includes(job.bundle)) continue;
      for await (const u of this.kv.list<Unit>({ prefix: ["unit", jobId] })) {
        const unit = u.value;
        const free = unit.status === "queued" ||
          (unit.status === "leased" && unit.lease!.until < t);
        if (!free) continue;
        if (unit.attempts >= MAX_ATTEMPTS) {
          await this.#finishUnit(
            unit,
            "failed",
            `gave up after ${unit.attempts} attempts (workers lost)`,
          );
          continue;
        }
        const leased: Unit = {
          ...unit,
          status: "leased",
          attempts: unit.attempts + 1,
          lease: { token: crypto.randomUUID(), worker, until: t + leaseMs },
          progress: null,
        };
        const op = this.kv.atomic().check(u).set(u.key, leased);
        if (job.status === "queued") {
          op.check(jobEntry).set(["job", jobId], { ...job, status: "running", updatedAt: now() });
        }
        if ((await op.commit()).ok) return { unit: leased, job };
      }
    }
    return null;
  }

  /** Extend a lease (heartbeat) and record progress; false if the lease is no longer ours. */
  async renewLease(
    jobId: string,
    idx: number,
    token: string,
    leaseMs: number,
    progress?: Unit["progress"],
  ) {
    const e = await this.kv.get<Unit>(["unit", jobId, idx]);
    const u = e.value;
    if (!u || u.status !== "leased" || u.lease?.token !== token) return false;
    const next = {
      ...u,
      lease: { ...u.lease, until: Date.now() + leaseMs },
      progress: progress ?? u.progress,
    };
    return (await this.kv.atomic().check(e).set(e.key, next).commit()).ok;
  }

  async getUnit(jobId: string, idx: number): Promise<Unit | null> {
    return (await this.kv.get<Unit>(["unit", jobId, idx])).value;
  }

  async listEvalResults(jobId: string): Promise<EvalShardResult[]> {
    const out: EvalShardResult[] = [];
    for await (const e of this.kv.list<EvalShardResult>({ prefix: ["evalres", jobId] })) {
      out.push(e.value);
    }
    return out;
  }

  async getAdversarial(setKey: string, index: number): Promise<AdvRecord | null> {
    return (await this.kv.get<AdvRecord>(["advset", setKey, index])).value;
  }

  /** Store adversarial examples of a set (first writer wins; a set is immutable once written). */
  async putAdversarial(
    setKey: string,
    items: { index: number; label: number; pixels: Uint8Array }[],
  ): Promise<void> {
    for (const it of items) {
      if (await this.getAdversarial(setKey, it.index)) continue;
      const blob = await this.putBlob(it.pixels);
      const r = await this.kv.atomic().check({
        key: ["advset", setKey, it.index],
        versionstamp: null,
      })
        .set(["advset", setKey, it.index], { blob, label: it.label }).commit();
      if (!r.ok) await this.deleteBlob(blob);
    }
  }

  // ---- uploaded datasets ----

  async putDataset(
    rec: Omit<DatasetRecord, "id" | "pixelsBlob" | "sha256" | "createdAt">,
    pixels: Uint8Array,
  ): Promise<DatasetRecord> {
    const blob = await this.putBlob(pixels);
    const full: DatasetRecord = {
      ...rec,
      id: crypto.randomUUID(),
      pixelsBlob: blob,
      sha256: createHash("sha256").update(JSON.stringify(rec.labels)).update(pixels).digest("hex"),
      createdAt: now(),
    };
    try {
      await commitOrThrow(this.kv.atomic().set(["dataset", full.id], full));
    } catch (e) {
      await this.deleteBlob(blob);
      throw e;
    }
    return full;
  }

  async getDataset(id: string): Promise<DatasetRecord | null> {
    return (await this.kv.get<DatasetRecord>(["dataset", id])).value;
  }

  // ---- adapters (Truth-Maximization checkpoints) ----

  /**
   * Store a checkpoint as an adapter. With a lease token it is accepted only from the unit's
   * current lease holder (a worker that lost its lease cannot write); a step already stored is
   * not written twice. Returns the adapter id, or "stale".
   */
  async putCheckpoint(
    lease: { jobId: string; idx: number; token: string } | null,
    rec: Omit<AdapterRecord, "id" | "stateBlob" | "createdAt">,
    state: Uint8Array,
  ): Promise<string | "stale"> {
    const existing = await this.kv.get<string>(["ftckpt", rec.jobId, rec.step]);
    if (existing.value) return existing.value;
    const blob = await this.putBlob(state);
    const id = crypto.randomUUID();
    const op = this.kv.atomic().check(existing)
      .set(["adapter", id], { ...rec, id, stateBlob: blob, createdAt: now() })
      .set(["ftckpt", rec.jobId, rec.step], id);
    if (lease) {
      const ue = await this.kv.get<Unit>(["unit", lease.jobId, lease.idx]);
      if (ue.value?.status !== "leased" || ue.value.lease?.token !== lease.token) {
        await this.deleteBlob(blob);
        return "stale";
      }
      op.check(ue);
    }
    if ((await op.commit()).ok) return id;
    await this.deleteBlob(blob);
    return (await this.kv.get<string>(["ftckpt", rec.jobId, rec.step])).value ?? "stale";
  }

  async getAdapter(id: string): Promise<AdapterRecord | null> {
    return (await this.kv.get<AdapterRecord>(["adapter", id])).value;
  }

  /** The adapter's LoRA tensors (float32 bytes, layout order), without the optimizer state. */
  async adapterLora(rec: AdapterRecord): Promise<Uint8Array> {
    const state = await this.getBlob(rec.stateBlob);
    if (!state || state.length % 12 !== 0) throw new Error(`adapter ${rec.id}: state blob missing`);
    return state.slice(0, state.length / 3);
  }

  async listCheckpoints(jobId: string): Promise<AdapterRecord[]> {
    const out: AdapterRecord[] = [];
    for await (const e of this.kv.list<string>({ prefix: ["ftckpt", jobId] })) {
      const a = await this.getAdapter(e.value);
      if (a) out.push(a);
    }
    return out;
  }

  /** The last checkpoint of a fine-tune with its full state (for resuming), or null. */
  async latestCheckpoint(jobId: string): Promise<{ rec: AdapterRecord; state: Uint8Array } | null> {
    for await (const e of this.kv.list<string>({ prefix: ["ftckpt", jobId] }, { reverse: true })) {
      const rec = await this.getAdapter(e.value);
      const state = rec && await this.getBlob(rec.stateBlob);
      if (rec && state) return { rec, state };
    }
    return null;
  }

  async getFinetuneResult(jobId: string): Promise<FinetuneResult | null> {
    return (await this.kv.get<FinetuneResult>(["ftres", jobId, 0])).value;
  }

  completeFinetuneUnit(
    jobId: string,
    idx: number,
    token: string,
    result: FinetuneResult,
  ): Promise<"ok" | "stale"> {
    return this.completeUnitWith(jobId, idx, token, ["ftres", jobId, idx], result);
  }

  /** Record a verdict for a leased unit; "stale" if the lease was lost to another worker. */
  completeUnit(
    jobId: string,
    idx: number,
    token: string,
    verdict: Verdict,
  ): Promise<"ok" | "stale"> {
    return this.completeUnitWith(jobId, idx, token, ["verdict", jobId, idx], verdict);
  }

  /** Record an evaluation shard's result for a leased unit. */
  completeEvalUnit(
    jobId: string,
    idx: number,
    token: string,
    result: EvalShardResult,
  ): Promise<"ok" | "stale"> {
    return this.completeUnitWith(jobId, idx, token, ["evalres", jobId, idx], result);
  }

  /** Mark a leased unit done and write its result in one atomic step, guarded by the lease token. */
  async completeUnitWith(
    jobId: string,
    idx: number,
    token: string,
    resultKey: Deno.KvKey,
    result: unknown,
  ): Promise<"ok" | "stale"> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const ue = await this.kv.get<Unit>(["unit", jobId, idx]);
      const u = ue.value;
      if (!u || u.status !== "leased" || u.lease?.token !== token) return "stale";
      const je = await this.kv.get<Job>(["job", jobId]);
      const job = je.value!;
      const next = { ...job, done: job.done + 1, updatedAt: now() };
      const op = this.kv.atomic().check(ue).check(je)
        .set(ue.key, { ...u, status: "done", lease: null })
        .set(resultKey, result);
      this.#closeIfFinished(op, next);
      if ((await op.commit()).ok) return "ok";
    }
    throw new Error("completeUnit: too much contention");
  }

  async failUnit(
    jobId: string,
    idx: number,
    token: string,
    error: string,
  ): Promise<"ok" | "stale"> {
    const u = (await this.kv.get<Unit>(["unit", jobId, idx])).value;
    if (!u || u.status !== "leased" || u.lease?.token !== token) return "stale";
    await this.#finishUnit(u, "failed", error);
    return "ok";
  }

  async #finishUnit(u: Unit, status: "failed", error: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const ue = await this.kv.get<Unit>(["unit", u.jobId, u.idx]);
      const je = await this.kv.get<Job>(["job", u.jobId]);
      if (!ue.value || !je.value || ue.value.status === "done" || ue.value.status === "failed") {
        return;
      }
      const next = { ...je.value, failed: je.value.failed + 1, updatedAt: now() };
      const op = this.kv.atomic().check(ue).check(je)
        .set(ue.key, { ...ue.value, status, lease: null, error });
      this.#closeIfFinished(op, next);
      if ((await op.commit()).ok) return;
    }
  }

  #closeIfFinished(op: Deno.AtomicOperation, job: Job): void {
    if (job.done + job.failed === job.total) {
      job.status = job.done > 0 || job.total === 0 ? "done" : "failed";
      job.finishedAt = now();
      op.delete(["active", job.createdAt, job.id]);
    }
    op.set(["job", job.id], job);
  }
}

async function commitOrThrow(op: Deno.AtomicOperation): Promise<void> {
  const r = await op.commit();
  if (!r.ok) throw new Error("KV atomic commit failed");
}
