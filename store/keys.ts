/**
 * The Deno KV key layout: every key the service stores is built here, so the layout can be
 * read (and changed) in one place. Record types are in ./records.ts, the code in ./kv_store.ts.
 *
 *   ["apikey", sha256(key)]              → ApiKeyRecord
 *   ["apikeyid", keyId]                  → sha256(key)     (index: a key by its id, to revoke it)
 *   ["audit", at, auditId]               → AuditRecord     (the audit log, oldest first)
 *   ["job", jobId]                       → Job
 *   ["jobkind", kind, createdAt, jobId]  → true            (index: a kind's jobs, oldest first)
 *   ["active", createdAt, jobId]         → true            (jobs with work left, FIFO)
 *   ["activeby", owner, createdAt, jobId] → true           (the same, by owner: fair share)
 *   ["evalgroup", group, createdAt, jobId] → true          (index: evaluations of one target on
 *                                          the same images, lib/evaluation/report.ts)
 *   ["unit", jobId, idx]                 → Unit            (one image of a job, or one shard)
 *   ["verdict", jobId, idx]              → Verdict
 *   ["evalres", jobId, idx]              → EvalShardResult (one shard of an evaluation)
 *   ["advset", setKey, index]            → AdvRecord: an adversarial example, reused by every
 *                                          evaluation with the same (attack, source, subset)
 *   ["adapter", adapterId]               → AdapterRecord: one Truth-Maximization checkpoint
 *   ["ftckpt", jobId, step]              → adapterId       (a fine-tune's checkpoints, by step)
 *   ["ftres", jobId, idx]                → FinetuneResult  (written when the fine-tune ends)
 *   ["dataset", datasetId]               → DatasetRecord: an uploaded labelled set (pixels in a blob)
 *   ["blob", blobId, "meta"|chunk]       → chunks of ≤ 60,000 bytes (KV values are ≤ 64 KiB)
 *   ["probe", uuid]                      → written and deleted by the readiness check
 *   ["quota", keyId, day]                → model calls a key submitted that UTC day
 *
 * `createdAt` is an ISO timestamp, so key order is time order. Builders named in the plural
 * return the prefix that lists a group (`units(jobId)` lists `unit(jobId, idx)` for every idx).
 */
import type { JobKind } from "./records.ts";

export const keys = {
  /** the prefix of every key: for diagnostics only */
  everything: (): Deno.KvKey => [],

  probe: (id: string): Deno.KvKey => ["probe", id],
  quota: (owner: string, day: string): Deno.KvKey => ["quota", owner, day],

  apiKey: (hash: string): Deno.KvKey => ["apikey", hash],
  apiKeys: (): Deno.KvKey => ["apikey"],
  apiKeyById: (id: string): Deno.KvKey => ["apikeyid", id],
  audit: (at: string, id: string): Deno.KvKey => ["audit", at, id],
  audits: (): Deno.KvKey => ["audit"],

  job: (id: string): Deno.KvKey => ["job", id],
  jobs: (): Deno.KvKey => ["job"],
  jobOfKind: (kind: JobKind, createdAt: string, id: string): Deno.KvKey => [
    "jobkind",
    kind,
    createdAt,
    id,
  ],
  jobsOfKind: (kind: JobKind): Deno.KvKey => ["jobkind", kind],
  evalGroupEntry: (group: string, createdAt: string, id: string): Deno.KvKey => [
    "evalgroup",
    group,
    createdAt,
    id,
  ],
  evalGroup: (group: string): Deno.KvKey => ["evalgroup", group],
  evalGroupIndex: (): Deno.KvKey => ["evalgroup"],
  jobKindIndex: (): Deno.KvKey => ["jobkind"],
  active: (createdAt: string, id: string): Deno.KvKey => ["active", createdAt, id],
  activeBy: (owner: string, createdAt: string, id: string): Deno.KvKey => [
    "activeby",
    owner,
    createdAt,
    id,
  ],
  activeOf: (owner: string): Deno.KvKey => ["activeby", owner],
  activeByIndex: (): Deno.KvKey => ["activeby"],
  activeJobs: (): Deno.KvKey => ["active"],

  unit: (jobId: string, idx: number): Deno.KvKey => ["unit", jobId, idx],
  units: (jobId: string): Deno.KvKey => ["unit", jobId],
  verdict: (jobId: string, idx: number): Deno.KvKey => ["verdict", jobId, idx],
  verdicts: (jobId: string): Deno.KvKey => ["verdict", jobId],
  evalResult: (jobId: string, idx: number): Deno.KvKey => ["evalres", jobId, idx],
  evalResults: (jobId: string): Deno.KvKey => ["evalres", jobId],
  finetuneResult: (jobId: string, idx: number): Deno.KvKey => ["ftres", jobId, idx],
  finetuneResults: (jobId: string): Deno.KvKey => ["ftres", jobId],

  adversarial: (setKey: string, index: number): Deno.KvKey => ["advset", setKey, index],

  adapter: (id: string): Deno.KvKey => ["adapter", id],
  adapters: (): Deno.KvKey => ["adapter"],
  checkpoint: (jobId: string, step: number): Deno.KvKey => ["ftckpt", jobId, step],
  checkpoints: (jobId: string): Deno.KvKey => ["ftckpt", jobId],

  dataset: (id: string): Deno.KvKey => ["dataset", id],
  datasets: (): Deno.KvKey => ["dataset"],

  blobMeta: (id: string): Deno.KvKey => ["blob", id, "meta"],
  blobChunk: (id: string, chunk: number): Deno.KvKey => ["blob", id, chunk],
  blob: (id: string): Deno.KvKey => ["blob", id],
} as const;

/** The job id at the end of an `active`, `jobkind` or `evalgroup` key (all end with it). */
export function jobIdOf(key: Deno.KvKey): string {
  return key[key.length - 1] as string;
}

/** Keys about API keys and the audit log: not job data (diagnostics leave them out). */
export function isApiKeyKey(key: Deno.KvKey): boolean {
  return key[0] === keys.apiKeys()[0] || key[0] === "apikeyid" || key[0] === keys.audits()[0];
}
