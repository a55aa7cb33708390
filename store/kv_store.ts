/**
 * Everything the service keeps in Deno KV: the only module that opens it and holds its handle
 * (key layout: ./keys.ts; record types: ./records.ts).
 *
 * State changes are atomic with version checks (at most 3 checks per atomic, so a
 * self-hosted denokv works too). A job becomes visible to workers only after all its
 * units and blobs are written ("creating" → "queued"); `recover()` at start-up deletes
 * jobs a crash left in "creating", so nothing is stored half-way.
 */
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import { isApiKeyKey, jobIdOf, keys } from "./keys.ts";
import { targetAndImagesKey } from "../lib/evaluation/report.ts";
import type {
  AdapterRecord,
  AdvRecord,
  ApiKeyRecord,
  AuditRecord,
  DatasetRecord,
  EvalShardResult,
  EvaluationSpec,
  FinetuneResult,
  Job,
  NewJob,
  Role,
  Unit,
  UnitInput,
  Verdict,
} from "./records.ts";

const CHUNK = 60_000;
const MAX_ATTEMPTS = 3;

/** A listing's cursor that KV does not accept (a client's typo, or another listing's). */
export class CursorError extends Error {
  override name = "CursorError";
}
/** Deno KV reads at most 10 keys in one getMany. */
const GET_MANY = 10;
const now = () => new Date().toISOString();
export const sha256hex = (s: string | Uint8Array) => createHash("sha256").update(s).digest("hex");

/** What a job's unit is made of: an uploaded image, or a shard of dataset indices. */
export type JobInput = { pixels: Uint8Array; input: Omit<UnitInput, "blob"> } | { shard: number[] };

export class Store {
  // private so that every key goes through ./keys.ts and every write through a method here
  readonly #kv: Deno.Kv;

  private constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  static async open(path?: string): Promise<Store> {
    // a local file's folder is created on first use; URLs (KV Connect) are opened as they are
    if (path && !/^https?:/.test(path) && path !== ":memory:") {
      await Deno.mkdir(dirname(path), { recursive: true });
    }
    return new Store(await Deno.openKv(path));
  }

  close(): void {
    this.#kv.close();
  }

  // ---- API keys (only hashes are stored) ----

  async createApiKey(
    name: string,
    role: Role = "member",
    createdBy: string | null = null,
  ): Promise<{ key: string; record: ApiKeyRecord }> {
    const key = "tmdc_" + btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(24))))
      .replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
    const record: ApiKeyRecord = {
      id: crypto.randomUUID(),
      name,
      role,
      createdAt: now(),
      createdBy,
      revokedAt: null,
    };
    const hash = sha256hex(key);
    await this.#kv.atomic()
      .set(keys.apiKey(hash), record)
      .set(keys.apiKeyById(record.id), hash)
      .set(...this.#auditEntry(createdBy ?? "cli", "key.create", record.id, { name, role }))
      .commit();
    return { key, record };
  }

  /** The key's record, or null when it is unknown or revoked. */
  async verifyApiKey(key: string): Promise<ApiKeyRecord | null> {
    const rec = (await this.#kv.get<ApiKeyRecord>(keys.apiKey(sha256hex(key)))).value;
    return rec && !rec.revokedAt ? rec : null;
  }

  /** Every key's record (never the key), oldest first. */
  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const out: ApiKeyRecord[] = [];
    for await (const e of this.#kv.list<ApiKeyRecord>({ prefix: keys.apiKeys() })) {
      out.push(e.value);
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** Revoke a key by id (effective for its next request); null if there is no such key. */
  async revokeApiKey(id: string, actor: string): Promise<ApiKeyRecord | null> {
    let hash = (await this.#kv.get<string>(keys.apiKeyById(id))).value;
    if (!hash) {
      // a key made before the id index existed: find it by its record (keys are few)
      for await (const e of this.#kv.list<ApiKeyRecord>({ prefix: keys.apiKeys() })) {
        if (e.value.id === id) hash = String(e.key[1]);
      }
      if (!hash) return null;
    }
    const e = await this.#kv.get<ApiKeyRecord>(keys.apiKey(hash));
    if (!e.value) return null;
    if (e.value.revokedAt) return e.value;
    const rec = { ...e.value, revokedAt: now() };
    const ok = await this.#kv.atomic().check(e).set(e.key, rec)
      .set(...this.#auditEntry(actor, "key.revoke", id, { name: rec.name })).commit();
    return ok.ok ? rec : this.revokeApiKey(id, actor);
  }

  #auditEntry(
    actor: string,
    action: AuditRecord["action"],
    target: string,
    detail?: Record<string, unknown>,
  ): [Deno.KvKey, AuditRecord] {
    const rec: AuditRecord = { id: crypto.randomUUID(), at: now(), actor, action, target, detail };
    return [keys.audit(rec.at, rec.id), rec];
  }

  /** Append to the audit log. */
  async audit(
    actor: string,
    action: AuditRecord["action"],
    target: string,
    detail?: Record<string, unknown>,
  ): Promise<void> {
    await this.#kv.set(...this.#auditEntry(actor, action, target, detail));
  }

  /**
   * The audit log, oldest first: `limit` entries after `cursor` (the `next` of the page before),
   * read from the cursor's key on, not scanned from the start.
   */
  async listAudit(
    limit: number,
    cursor?: string,
  ): Promise<{ entries: AuditRecord[]; next: string | null }> {
    const [at, id] = cursor?.split("|") ?? [];
    const selector = at && id
      ? { prefix: keys.audits(), start: keys.audit(at, id) }
      : { prefix: keys.audits() };
    const entries: AuditRecord[] = [];
    for await (const e of this.#kv.list<AuditRecord>(selector, { limit: limit + 2 })) {
      if (e.value.id === id) continue; // the cursor's own entry
      entries.push(e.value);
      if (entries.length > limit) break;
    }
    const more = entries.length > limit;
    if (more) entries.pop();
    const last = entries.at(-1);
    return { entries, next: more && last ? `${last.at}|${last.id}` : null };
  }

  async countApiKeys(): Promise<number> {
    let n = 0;
    for await (const _ of this.#kv.list({ prefix: keys.apiKeys() })) n++;
    return n;
  }

  /**
   * Diagnostics: every stored key except API keys, in key order. Tests use it to show that a
   * refused or interrupted request left nothing behind; nothing in the service reads it.
   */
  /** Write and delete a key: throws when the KV cannot take a write (read-only, disk full). */
  async probeWrite(): Promise<void> {
    const k = keys.probe(crypto.randomUUID());
    await this.#kv.set(k, Date.now());
    await this.#kv.delete(k);
  }

  async listKeysForDiagnostics(): Promise<Deno.KvKey[]> {
    const out: Deno.KvKey[] = [];
    for await (const e of this.#kv.list({ prefix: keys.everything() })) {
      if (!isApiKeyKey(e.key)) out.push(e.key);
    }
    return out;
  }

  // ---- blobs ----

  async putBlob(bytes: Uint8Array): Promise<string> {
    const id = crypto.randomUUID();
    const chunks = Math.ceil(bytes.length / CHUNK);
    for (let start = 0; start < chunks; start += 10) {
      const op = this.#kv.atomic();
      for (let k = start; k < Math.min(chunks, start + 10); k++) {
        op.set(keys.blobChunk(id, k), bytes.subarray(k * CHUNK, (k + 1) * CHUNK));
      }
      await commitOrThrow(op);
    }
    await this.#kv.set(keys.blobMeta(id), {
      size: bytes.length,
      chunks,
      sha256: sha256hex(bytes),
    });
    return id;
  }

  async getBlob(id: string): Promise<Uint8Array | null> {
    const meta =
      (await this.#kv.get<{ size: number; chunks: number; sha256: string }>(keys.blobMeta(id)))
        .value;
    if (!meta) return null;
    const out = new Uint8Array(meta.size);
    for (let k = 0; k < meta.chunks; k++) {
      const c = (await this.#kv.get<Uint8Array>(keys.blobChunk(id, k))).value;
      if (!c) throw new Error(`blob ${id} is missing chunk ${k}`);
      out.set(c, k * CHUNK);
    }
    if (sha256hex(out) !== meta.sha256) throw new Error(`blob ${id} is corrupted`);
    return out;
  }

  async deleteBlob(id: string): Promise<void> {
    for await (const e of this.#kv.list({ prefix: keys.blob(id) })) await this.#kv.delete(e.key);
  }

  // ---- jobs ----

  /**
   * Write a job and its units (uploaded images, or shards of dataset indices); it is visible
   * to workers only once everything is stored.
   */
  async createJob(fields: NewJob, inputs: JobInput[]): Promise<Job> {
    const job = await this.#beginJob(fields, inputs.length);
    try {
      await this.#writeUnits(job.id, inputs);
      const queued = { ...job, status: "queued" as const, updatedAt: now() };
      await commitOrThrow(
        this.#kv.atomic().set(keys.job(job.id), queued).set(
          keys.active(job.createdAt, job.id),
          true,
        ).set(keys.activeBy(job.owner, job.createdAt, job.id), true)
          .set(...this.#auditEntry(job.owner, "job.create", job.id, { kind: job.kind })),
      );
      return queued;
    } catch (e) {
      await this.deleteJob(job.id);
      throw e;
    }
  }

  /** The job record in "creating" state, with its kind index (both or neither). */
  async #beginJob(fields: NewJob, total: number): Promise<Job> {
    const id = crypto.randomUUID();
    const t = now();
    const job: Job = {
      ...fields,
      id,
      status: "creating",
      total,
      done: 0,
      failed: 0,
      createdAt: t,
      updatedAt: t,
    };
    const op = this.#kv.atomic().set(keys.job(id), job).set(keys.jobOfKind(job.kind, t, id), true);
    const group = groupKey(job);
    if (group) op.set(group, true);
    await commitOrThrow(op);
    return job;
  }

  async #writeUnits(jobId: string, inputs: JobInput[]): Promise<void> {
    for (let i = 0; i < inputs.length; i++) {
      const item = inputs[i];
      const unit: Unit = {
        jobId,
        idx: i,
        status: "queued",
        attempts: 0,
        lease: null,
        progress: null,
      };
      if ("shard" in item) unit.shard = item.shard;
      else unit.input = { ...item.input, blob: await this.putBlob(item.pixels) };
      await this.#kv.set(keys.unit(jobId, i), unit);
    }
  }

  async getJob(id: string): Promise<Job | null> {
    return (await this.#kv.get<Job>(keys.job(id))).value;
  }

  /**
   * Every job of a kind, oldest first (same millisecond: by id), read through the kind index
   * rather than a scan of every job.
   */
  async listJobs(kind: Job["kind"]): Promise<Job[]> {
    const ids: string[] = [];
    for await (const e of this.#kv.list({ prefix: keys.jobsOfKind(kind) })) {
      ids.push(jobIdOf(e.key));
    }
    const out: Job[] = [];
    for (let k = 0; k < ids.length; k += GET_MANY) {
      const got = await this.#kv.getMany<Job[]>(ids.slice(k, k + GET_MANY).map(keys.job));
      for (const e of got) if (e.value) out.push(e.value);
    }
    return out;
  }

  /**
   * One page under `prefix`, after the key `from` (exclusive; newest first when `reverse`):
   * read from that key on, not scanned from the start. `next` is the last key of a full page.
   */
  async #page<T>(
    prefix: Deno.KvKey,
    limit: number,
    from: Deno.KvKey | undefined,
    reverse = false,
  ): Promise<{ entries: Deno.KvEntry<T>[]; next: Deno.KvKey | null }> {
    const selector = !from ? { prefix } : reverse ? { prefix, end: from } : { prefix, start: from };
    const entries: Deno.KvEntry<T>[] = [];
    for await (const e of this.#kv.list<T>(selector, { limit: limit + 1, reverse })) {
      if (from && !reverse && sameKey(e.key, from)) continue; // start is inclusive
      entries.push(e);
      if (entries.length === limit) break;
    }
    return { entries, next: entries.length === limit ? entries.at(-1)!.key : null };
  }

  /** A page of a kind's jobs, newest first; the cursor is the last job's `createdAt|id`. */
  async listJobsPage(
    kind: Job["kind"],
    limit: number,
    cursor?: string,
  ): Promise<{ jobs: Job[]; next: string | null }> {
    let from: Deno.KvKey | undefined;
    if (cursor) {
      const m = /^(\d{4}-\d\d-\d\dT[\d:.]+Z)\|([0-9a-f-]{36})$/.exec(cursor);
      if (!m) throw new CursorError(`'${cursor}' is not a cursor of this listing`);
      from = keys.jobOfKind(kind, m[1], m[2]);
    }
    const { entries, next } = await this.#page<boolean>(keys.jobsOfKind(kind), limit, from, true);
    const jobs: Job[] = [];
    for (let k = 0; k < entries.length; k += GET_MANY) {
      const got = await this.#kv.getMany<Job[]>(
        entries.slice(k, k + GET_MANY).map((e) => keys.job(jobIdOf(e.key))),
      );
      for (const e of got) if (e.value) jobs.push(e.value);
    }
    return { jobs, next: next ? `${String(next[2])}|${String(next[3])}` : null };
  }

  /** A page of the adapters (every stored checkpoint), by id; the cursor is the last id. */
  async listAdaptersPage(limit: number, cursor?: string) {
    const { entries, next } = await this.#page<AdapterRecord>(
      keys.adapters(),
      limit,
      idCursor(cursor, keys.adapter),
    );
    return { adapters: entries.map((e) => e.value), next: next ? String(next[1]) : null };
  }

  /** A page of the uploaded sets, by id; the cursor is the last id. */
  async listDatasetsPage(limit: number, cursor?: string) {
    const { entries, next } = await this.#page<DatasetRecord>(
      keys.datasets(),
      limit,
      idCursor(cursor, keys.dataset),
    );
    return { datasets: entries.map((e) => e.value), next: next ? String(next[1]) : null };
  }

  /** The evaluations of `spec`'s target on its images (the index, not a scan), oldest first. */
  async listEvaluationGroup(spec: EvaluationSpec): Promise<Job[]> {
    const keysOf: Deno.KvKey[] = [];
    for await (const e of this.#kv.list({ prefix: keys.evalGroup(targetAndImagesKey(spec)) })) {
      keysOf.push(keys.job(jobIdOf(e.key)));
    }
    const out: Job[] = [];
    for (let k = 0; k < keysOf.length; k += GET_MANY) {
      for (const e of await this.#kv.getMany<Job[]>(keysOf.slice(k, k + GET_MANY))) {
        if (e.value) out.push(e.value);
      }
    }
    return out;
  }

  async listUnits(jobId: string): Promise<Unit[]> {
    const out: Unit[] = [];
    for await (const e of this.#kv.list<Unit>({ prefix: keys.units(jobId) })) out.push(e.value);
    return out;
  }

  async getVerdict(jobId: string, idx: number): Promise<Verdict | null> {
    return (await this.#kv.get<Verdict>(keys.verdict(jobId, idx))).value;
  }

  async listVerdicts(jobId: string): Promise<Verdict[]> {
    const out: Verdict[] = [];
    for await (const e of this.#kv.list<Verdict>({ prefix: keys.verdicts(jobId) })) {
      out.push(e.value);
    }
    return out;
  }

  async deleteJob(id: string): Promise<void> {
    const job = await this.getJob(id);
    for await (const e of this.#kv.list<Unit>({ prefix: keys.units(id) })) {
      if (e.value.input) await this.deleteBlob(e.value.input.blob);
      await this.#kv.delete(e.key);
    }
    for (const prefix of [keys.verdicts(id), keys.evalResults(id), keys.finetuneResults(id)]) {
      for await (const e of this.#kv.list({ prefix })) await this.#kv.delete(e.key);
    }
    const op = this.#kv.atomic().delete(keys.job(id));
    if (job) {
      op.delete(keys.active(job.createdAt, id)).delete(keys.jobOfKind(job.kind, job.createdAt, id))
        .delete(keys.activeBy(job.owner, job.createdAt, id));
      const group = groupKey(job);
      if (group) op.delete(group);
    }
    await commitOrThrow(op);
  }

  /**
   * Start-up: remove jobs interrupted while being created (returns their ids), and index by
   * kind the jobs a KV file written before the kind index existed holds without one.
   */
  async recover(): Promise<string[]> {
    const dropped: string[] = [];
    const kept: Job[] = [];
    for await (const e of this.#kv.list<Job>({ prefix: keys.jobs() })) {
      if (e.value.status === "creating") dropped.push(e.value.id);
      else kept.push(e.value);
    }
    for (const id of dropped) await this.deleteJob(id);
    // jobs with work left that a KV file written before the per-owner index holds without it
    for (const j of kept) {
      if (j.status !== "queued" && j.status !== "running") continue;
      const k = keys.activeBy(j.owner, j.createdAt, j.id);
      if ((await this.#kv.get(k)).versionstamp === null) await this.#kv.set(k, true);
    }
    for (let k = 0; k < kept.length; k += GET_MANY / 2) {
      const batch = kept.slice(k, k + GET_MANY / 2);
      const wanted = batch.flatMap((j) => {
        const g = groupKey(j);
        return g
          ? [keys.jobOfKind(j.kind, j.createdAt, j.id), g]
          : [keys.jobOfKind(j.kind, j.createdAt, j.id)];
      });
      const indexed = await this.#kv.getMany(wanted);
      const missing = indexed.filter((e) => e.versionstamp === null);
      if (missing.length === 0) continue;
      const op = this.#kv.atomic();
      for (const e of missing) op.set(e.key, true);
      await commitOrThrow(op);
    }
    return dropped;
  }

  /**
   * For tests only: states the public methods never leave behind, planted the way a crash or
   * an older version of the store would leave them, so that `recover()` can be tested on them.
   */
  readonly __testing = {
    /** createJob stopped by a crash after writing the units, before the job was queued */
    createInterruptedJob: async (fields: NewJob, inputs: JobInput[]): Promise<Job> => {
      const job = await this.#beginJob(fields, inputs.length);
      await this.#writeUnits(job.id, inputs);
      return job;
    },
    /** a KV file written before the kind index existed: every job without its index entry */
    dropJobKindIndex: async (): Promise<void> => {
      for await (const e of this.#kv.list({ prefix: keys.jobKindIndex() })) {
        await this.#kv.delete(e.key);
      }
    },
    /** an API key as the store wrote it before roles: {id, name, createdAt}, no id index */
    plantLegacyApiKey: async (key: string, id: string, name: string): Promise<void> => {
      await this.#kv.set(keys.apiKey(sha256hex(key)), { id, name, createdAt: now() });
    },
    /** a KV file written before the per-owner active index existed */
    dropActiveByIndex: async (): Promise<void> => {
      for await (const e of this.#kv.list({ prefix: keys.activeByIndex() })) {
        await this.#kv.delete(e.key);
      }
    },
    /** a KV file written before the evaluation-group index existed */
    dropEvalGroupIndex: async (): Promise<void> => {
      for await (const e of this.#kv.list({ prefix: keys.evalGroupIndex() })) {
        await this.#kv.delete(e.key);
      }
    },
  };

  // ---- leasing (work units for workers) ----

  /** Jobs with work left that `owner` created (a scan of the active index). */
  async countActiveJobs(owner: string): Promise<number> {
    let n = 0;
    for await (const a of this.#kv.list<boolean>({ prefix: keys.activeJobs() })) {
      if ((await this.#kv.get<Job>(keys.job(jobIdOf(a.key)))).value?.owner === owner) n++;
    }
    return n;
  }

  /**
   * Add `amount` to what `owner` used on `day` unless that would pass `limit`: atomic, so
   * concurrent submissions cannot both slip under it. Returns what was used before.
   */
  async chargeDaily(
    owner: string,
    day: string,
    amount: number,
    limit: number,
  ): Promise<{ ok: boolean; used: number }> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const e = await this.#kv.get<number>(keys.quota(owner, day));
      const used = e.value ?? 0;
      if (used + amount > limit) return { ok: false, used };
      if ((await this.#kv.atomic().check(e).set(e.key, used + amount).commit()).ok) {
        return { ok: true, used };
      }
    }
    throw new Error("chargeDaily: too much contention");
  }

  /** counters this process keeps (metrics): units leased again after their lease ran out */
  readonly stats = { leaseExpiries: 0 };

  /** Jobs with work left and their units by state (read at a metrics scrape). */
  async activeSummary(): Promise<{ jobs: number; units: Partial<Record<Unit["status"], number>> }> {
    let jobs = 0;
    const units: Partial<Record<Unit["status"], number>> = {};
    for await (const a of this.#kv.list<boolean>({ prefix: keys.activeJobs() })) {
      jobs++;
      for await (const u of this.#kv.list<Unit>({ prefix: keys.units(jobIdOf(a.key)) })) {
        units[u.value.status] = (units[u.value.status] ?? 0) + 1;
      }
    }
    return { jobs, units };
  }

  /** The owner after `after` in the per-owner active index (null: none left). */
  async #nextOwner(after: string | null): Promise<string | null> {
    const selector = after === null
      ? { prefix: keys.activeByIndex() }
      : { prefix: keys.activeByIndex(), start: [...keys.activeOf(after), "\uffff"] };
    for await (const e of this.#kv.list<boolean>(selector, { limit: 1 })) return String(e.key[1]);
    return null;
  }

  /** when each owner (API key id) was last given a unit: fair share between keys */
  #lastServed = new Map<string, number>();

  /**
   * Lease an available unit (queued, or leased with an expired lease: its worker is gone) of a
   * job on one of `bundles`. Fair share between keys: among the jobs with a free unit, the one
   * whose owner holds the fewest live leases, then the owner served longest ago, then the
   * oldest job — so two keys submitting at once are served in turn, not first come first
   * served. Each lease gets a fresh token; results are accepted only with the current token,
   * so every unit completes exactly once.
   */
  async leaseNext(
    worker: string,
    bundles: readonly string[],
    leaseMs: number,
  ): Promise<{ unit: Unit; job: Job } | null> {
    const t = Date.now();
    const live = new Map<string, number>();
    const candidates: { job: Job; jobEntry: Deno.KvEntry<Job>; unit: Deno.KvEntry<Unit> }[] = [];
    // Owner by owner (a skip scan of the per-owner index: one read per owner), each owner's jobs
    // oldest first until one has a unit this worker can take. Units are leased in index order,
    // so a job's live leases come before its first free unit: the scan of a job stops there.
    // The cost is the owners with work plus their leading busy jobs, not every active job.
    for (
      let owner = await this.#nextOwner(null);
      owner !== null;
      owner = await this.#nextOwner(owner)
    ) {
      for await (const a of this.#kv.list<boolean>({ prefix: keys.activeOf(owner) })) {
        const jobEntry = await this.#kv.get<Job>(keys.job(jobIdOf(a.key)));
        const job = jobEntry.value;
        if (!job || (job.status !== "queued" && job.status !== "running")) continue;
        if (!bundles.includes(job.bundle)) continue; // not this worker's (its leases go uncounted)
        let free: Deno.KvEntry<Unit> | null = null;
        for await (const u of this.#kv.list<Unit>({ prefix: keys.units(job.id) })) {
          const unit = u.value;
          if (unit.status === "leased" && unit.lease!.until >= t) {
            live.set(owner, (live.get(owner) ?? 0) + 1);
            continue;
          }
          const isFree = unit.status === "queued" || unit.status === "leased";
          if (!isFree) continue;
          if (unit.attempts >= MAX_ATTEMPTS) {
            await this.#finishUnit(
              unit,
              "failed",
              `gave up after ${unit.attempts} attempts (workers lost)`,
            );
            continue;
          }
          free = u as Deno.KvEntry<Unit>;
          break;
        }
        if (free) {
          candidates.push({ job, jobEntry: jobEntry as Deno.KvEntry<Job>, unit: free });
          break; // this owner's oldest takeable job
        }
      }
    }
    const rank = (
      c: { job: Job },
    ) => [live.get(c.job.owner) ?? 0, this.#lastServed.get(c.job.owner) ?? 0];
    candidates.sort((a, b) => {
      const [la, sa] = rank(a);
      const [lb, sb] = rank(b);
      return la - lb || sa - sb || a.job.createdAt.localeCompare(b.job.createdAt); // then FIFO
    });
    for (const { job, jobEntry, unit: u } of candidates) {
      const leased: Unit = {
        ...u.value,
        status: "leased",
        attempts: u.value.attempts + 1,
        lease: { token: crypto.randomUUID(), worker, until: t + leaseMs },
        progress: null,
      };
      const op = this.#kv.atomic().check(u).set(u.key, leased);
      if (job.status === "queued") {
        op.check(jobEntry).set(keys.job(job.id), { ...job, status: "running", updatedAt: now() });
      }
      if ((await op.commit()).ok) {
        this.#lastServed.set(job.owner, performance.now());
        if (u.value.status === "leased") this.stats.leaseExpiries++;
        return { unit: leased, job };
      }
    }
    return null;
  }

  /**
   * Cancel a job: it leaves the queue, its units not yet finished become "cancelled" (a worker
   * running one hears so at its next heartbeat, and its result is stale). Null for an unknown
   * job, "finished" for one that has ended.
   */
  async cancelJob(id: string, actor: string): Promise<Job | "finished" | null> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const je = await this.#kv.get<Job>(keys.job(id));
      const job = je.value;
      if (!job || job.status === "creating") return null;
      if (job.status === "done" || job.status === "failed" || job.status === "cancelled") {
        return "finished";
      }
      const t = now();
      const next: Job = { ...job, status: "cancelled", finishedAt: t, updatedAt: t };
      const op = this.#kv.atomic().check(je).set(je.key, next)
        .delete(keys.active(job.createdAt, id))
        .delete(keys.activeBy(job.owner, job.createdAt, id))
        .set(...this.#auditEntry(actor, "job.cancel", id, { kind: job.kind }));
      if (!(await op.commit()).ok) continue;
      // the units: completion checks the job's status, so this need not be atomic with it
      for await (const first of this.#kv.list<Unit>({ prefix: keys.units(id) })) {
        // retried until it holds: a heartbeat may renew the lease between the read and the write
        for (let u = first; u.value.status === "queued" || u.value.status === "leased";) {
          const ok = await this.#kv.atomic().check(u).set(u.key, {
            ...u.value,
            status: "cancelled",
          })
            .commit();
          if (ok.ok) break;
          const again = await this.#kv.get<Unit>(u.key);
          if (!again.value) break;
          u = again as Deno.KvEntry<Unit>;
        }
      }
      return next;
    }
    throw new Error("cancelJob: too much contention");
  }

  /** Extend a lease (heartbeat) and record progress; false if the lease is no longer ours. */
  async renewLease(
    jobId: string,
    idx: number,
    token: string,
    leaseMs: number,
    progress?: Unit["progress"],
  ) {
    const e = await this.#kv.get<Unit>(keys.unit(jobId, idx));
    const u = e.value;
    if (!u || u.status !== "leased" || u.lease?.token !== token) return false;
    const next = {
      ...u,
      lease: { ...u.lease, until: Date.now() + leaseMs },
      progress: progress ?? u.progress,
    };
    return (await this.#kv.atomic().check(e).set(e.key, next).commit()).ok;
  }

  async getUnit(jobId: string, idx: number): Promise<Unit | null> {
    return (await this.#kv.get<Unit>(keys.unit(jobId, idx))).value;
  }

  async listEvalResults(jobId: string): Promise<EvalShardResult[]> {
    const out: EvalShardResult[] = [];
    for await (const e of this.#kv.list<EvalShardResult>({ prefix: keys.evalResults(jobId) })) {
      out.push(e.value);
    }
    return out;
  }

  async getAdversarial(setKey: string, index: number): Promise<AdvRecord | null> {
    return (await this.#kv.get<AdvRecord>(keys.adversarial(setKey, index))).value;
  }

  /** Store adversarial examples of a set (first writer wins; a set is immutable once written). */
  async putAdversarial(
    setKey: string,
    items: { index: number; label: number; pixels: Uint8Array }[],
  ): Promise<void> {
    for (const it of items) {
      if (await this.getAdversarial(setKey, it.index)) continue;
      const blob = await this.putBlob(it.pixels);
      const key = keys.adversarial(setKey, it.index);
      const r = await this.#kv.atomic().check({ key, versionstamp: null })
        .set(key, { blob, label: it.label }).commit();
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
      await commitOrThrow(this.#kv.atomic().set(keys.dataset(full.id), full));
    } catch (e) {
      await this.deleteBlob(blob);
      throw e;
    }
    return full;
  }

  async getDataset(id: string): Promise<DatasetRecord | null> {
    return (await this.#kv.get<DatasetRecord>(keys.dataset(id))).value;
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
    const existing = await this.#kv.get<string>(keys.checkpoint(rec.jobId, rec.step));
    if (existing.value) return existing.value;
    const blob = await this.putBlob(state);
    const id = crypto.randomUUID();
    const op = this.#kv.atomic().check(existing)
      .set(keys.adapter(id), { ...rec, id, stateBlob: blob, createdAt: now() })
      .set(keys.checkpoint(rec.jobId, rec.step), id);
    if (lease) {
      const ue = await this.#kv.get<Unit>(keys.unit(lease.jobId, lease.idx));
      if (ue.value?.status !== "leased" || ue.value.lease?.token !== lease.token) {
        await this.deleteBlob(blob);
        return "stale";
      }
      op.check(ue);
    }
    if ((await op.commit()).ok) return id;
    await this.deleteBlob(blob);
    return (await this.#kv.get<string>(keys.checkpoint(rec.jobId, rec.step))).value ?? "stale";
  }

  /** Store an imported adapter (no fine-tune job of this deployment made it), audited. */
  async importAdapter(
    rec: Omit<AdapterRecord, "id" | "stateBlob" | "createdAt">,
    state: Uint8Array,
  ): Promise<AdapterRecord> {
    const blob = await this.putBlob(state);
    const full: AdapterRecord = {
      ...rec,
      id: crypto.randomUUID(),
      stateBlob: blob,
      createdAt: now(),
    };
    try {
      await commitOrThrow(
        this.#kv.atomic().set(keys.adapter(full.id), full)
          .set(
            ...this.#auditEntry(rec.owner, "adapter.import", full.id, { from: rec.importedFrom }),
          ),
      );
    } catch (e) {
      await this.deleteBlob(blob); // nothing of a refused import stays behind
      throw e;
    }
    return full;
  }

  async getAdapter(id: string): Promise<AdapterRecord | null> {
    return (await this.#kv.get<AdapterRecord>(keys.adapter(id))).value;
  }

  /** The adapter's LoRA tensors (float32 bytes, layout order), without the optimizer state. */
  async adapterLora(rec: AdapterRecord): Promise<Uint8Array> {
    const state = await this.getBlob(rec.stateBlob);
    if (!state || state.length % 12 !== 0) throw new Error(`adapter ${rec.id}: state blob missing`);
    return state.slice(0, state.length / 3);
  }

  async listCheckpoints(jobId: string): Promise<AdapterRecord[]> {
    const out: AdapterRecord[] = [];
    for await (const e of this.#kv.list<string>({ prefix: keys.checkpoints(jobId) })) {
      const a = await this.getAdapter(e.value);
      if (a) out.push(a);
    }
    return out;
  }

  /** The last checkpoint of a fine-tune with its full state (for resuming), or null. */
  async latestCheckpoint(jobId: string): Promise<{ rec: AdapterRecord; state: Uint8Array } | null> {
    for await (
      const e of this.#kv.list<string>({ prefix: keys.checkpoints(jobId) }, { reverse: true })
    ) {
      const rec = await this.getAdapter(e.value);
      const state = rec && await this.getBlob(rec.stateBlob);
      if (rec && state) return { rec, state };
    }
    return null;
  }

  async getFinetuneResult(jobId: string): Promise<FinetuneResult | null> {
    return (await this.#kv.get<FinetuneResult>(keys.finetuneResult(jobId, 0))).value;
  }

  completeFinetuneUnit(
    jobId: string,
    idx: number,
    token: string,
    result: FinetuneResult,
  ): Promise<"ok" | "stale"> {
    return this.#completeUnitWith(jobId, idx, token, keys.finetuneResult(jobId, idx), result);
  }

  /** Record a verdict for a leased unit; "stale" if the lease was lost to another worker. */
  completeUnit(
    jobId: string,
    idx: number,
    token: string,
    verdict: Verdict,
  ): Promise<"ok" | "stale"> {
    return this.#completeUnitWith(jobId, idx, token, keys.verdict(jobId, idx), verdict);
  }

  /** Record an evaluation shard's result for a leased unit. */
  completeEvalUnit(
    jobId: string,
    idx: number,
    token: string,
    result: EvalShardResult,
  ): Promise<"ok" | "stale"> {
    return this.#completeUnitWith(jobId, idx, token, keys.evalResult(jobId, idx), result);
  }

  /** Mark a leased unit done and write its result in one atomic step, guarded by the lease token. */
  async #completeUnitWith(
    jobId: string,
    idx: number,
    token: string,
    resultKey: Deno.KvKey,
    result: unknown,
  ): Promise<"ok" | "stale"> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const ue = await this.#kv.get<Unit>(keys.unit(jobId, idx));
      const u = ue.value;
      if (!u || u.status !== "leased" || u.lease?.token !== token) return "stale";
      const je = await this.#kv.get<Job>(keys.job(jobId));
      const job = je.value!;
      if (job.status === "cancelled") return "stale";
      const next = { ...job, done: job.done + 1, updatedAt: now() };
      const op = this.#kv.atomic().check(ue).check(je)
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
    const u = (await this.#kv.get<Unit>(keys.unit(jobId, idx))).value;
    if (!u || u.status !== "leased" || u.lease?.token !== token) return "stale";
    await this.#finishUnit(u, "failed", error);
    return "ok";
  }

  async #finishUnit(u: Unit, status: "failed", error: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const ue = await this.#kv.get<Unit>(keys.unit(u.jobId, u.idx));
      const je = await this.#kv.get<Job>(keys.job(u.jobId));
      if (
        !ue.value || !je.value || ue.value.status !== "queued" && ue.value.status !== "leased" ||
        je.value.status === "cancelled"
      ) {
        return;
      }
      const next = { ...je.value, failed: je.value.failed + 1, updatedAt: now() };
      const op = this.#kv.atomic().check(ue).check(je)
        .set(ue.key, { ...ue.value, status, lease: null, error });
      this.#closeIfFinished(op, next);
      if ((await op.commit()).ok) return;
    }
  }

  #closeIfFinished(op: Deno.AtomicOperation, job: Job): void {
    if (job.done + job.failed === job.total) {
      job.status = job.done > 0 || job.total === 0 ? "done" : "failed";
      job.finishedAt = now();
      op.delete(keys.active(job.createdAt, job.id));
      op.delete(keys.activeBy(job.owner, job.createdAt, job.id));
    }
    op.set(keys.job(job.id), job);
  }
}

/** An evaluation's entry in the evaluation-group index (null for other kinds). */
function groupKey(job: Job): Deno.KvKey | null {
  return job.kind === "evaluate"
    ? keys.evalGroupEntry(targetAndImagesKey(job.evaluation), job.createdAt, job.id)
    : null;
}

function sameKey(a: Deno.KvKey, b: Deno.KvKey): boolean {
  return a.length === b.length && a.every((p, i) => p === b[i]);
}

/** An id cursor (a UUID) as the key to list after; a CursorError for anything else. */
function idCursor(cursor: string | undefined, key: (id: string) => Deno.KvKey) {
  if (!cursor) return undefined;
  if (!/^[0-9a-f-]{36}$/.test(cursor)) {
    throw new CursorError(`'${cursor}' is not a cursor of this listing`);
  }
  return key(cursor);
}

async function commitOrThrow(op: Deno.AtomicOperation): Promise<void> {
  const r = await op.commit();
  if (!r.ok) throw new Error("KV atomic commit failed");
}
