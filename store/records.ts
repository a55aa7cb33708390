/**
 * The service's data model: every record kept in Deno KV (store/keys.ts knows the keys).
 * Jobs are a union discriminated by `kind`; specs are the zod-inferred types from lib/.
 */
import type { DCSettings } from "../lib/dc_settings.ts";
import type { EvalItem, EvaluationSpec, PerAttack } from "../lib/evaluation/spec.ts";
import type { CheckpointScore, FinetuneJobSpec } from "../lib/finetune_spec.ts";

export type { CheckpointScore, EvalItem, EvaluationSpec, FinetuneJobSpec };

export type JobStatus = "creating" | "queued" | "running" | "done" | "failed" | "cancelled";
export type JobKind = "classify" | "evaluate" | "finetune";

interface JobBase {
  id: string;
  status: JobStatus;
  owner: string;
  /** visible to its owner and admins only (absent: the whole team's) */
  private?: boolean;
  /** the bundle a worker must hold to take the job's units (an evaluation: its target) */
  bundle: string;
  adapter: string | null;
  settings: DCSettings;
  total: number;
  done: number;
  failed: number;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
}

export interface ClassifyJob extends Omit<JobBase, "settings"> {
  kind: "classify";
  /** the DC settings; null when the bundle is a discriminative classifier (one forward pass) */
  settings: DCSettings | null;
}

export interface EvaluationJob extends JobBase {
  kind: "evaluate";
  evaluation: EvaluationSpec;
}

export interface FinetuneJob extends JobBase {
  kind: "finetune";
  finetune: FinetuneJobSpec;
}

export type Job = ClassifyJob | EvaluationJob | FinetuneJob;

/** The fields a caller gives when creating a job (the store adds id, status, counts, times). */
export type NewJob =
  | Pick<ClassifyJob, "kind" | "owner" | "private" | "bundle" | "adapter" | "settings">
  | Pick<
    EvaluationJob,
    "kind" | "owner" | "private" | "bundle" | "adapter" | "settings" | "evaluation"
  >
  | Pick<
    FinetuneJob,
    "kind" | "owner" | "private" | "bundle" | "adapter" | "settings" | "finetune"
  >;

export interface EvalShardResult {
  items: EvalItem[];
  perAttack?: PerAttack[];
  reusedAdversarial: boolean;
  computeMs: number;
  worker: { id: string; provider: string };
}

export interface AdvRecord {
  blob: string;
  label: number;
}

/** One stored checkpoint of a fine-tune: usable by id wherever an adapter is accepted. */
export interface AdapterRecord {
  id: string;
  bundle: string;
  jobId: string;
  owner: string;
  step: number;
  loss: number;
  validation: CheckpointScore;
  finetune: FinetuneJobSpec;
  /** float32 [LoRA…, AdamW m…, v…]: the LoRA tensors are its first third */
  stateBlob: string;
  createdAt: string;
  /** an adapter imported from a file: the id it had where it was exported */
  importedFrom?: string;
  /** made by a private fine-tune: its owner's (and admins') only */
  private?: boolean;
}

export interface FinetuneResult {
  best: string;
  bestStep: number;
  checkpoints: { step: number; adapter: string; loss: number; validation: CheckpointScore }[];
  computeMs: number;
  worker: { id: string; provider: string };
}

/** A labelled image set a user uploaded for evaluations (pixels: float32 n × C·H·W). */
export interface DatasetRecord {
  id: string;
  name: string;
  owner: string;
  n: number;
  shape: { channels: number; height: number; width: number };
  numClasses: number;
  labels: number[];
  files: string[];
  pixelsBlob: string;
  /** sha256 of the pixels and labels: adversarial sets are keyed by content */
  sha256: string;
  createdAt: string;
}

export interface UnitInput {
  blob: string;
  name: string;
  source: { format: string; width: number; height: number; channels: number };
  conversion: string[];
  decoder: string;
}

export interface Unit {
  jobId: string;
  idx: number;
  status: "queued" | "leased" | "done" | "failed" | "cancelled";
  attempts: number;
  lease: { token: string; worker: string; until: number } | null;
  progress: { calls: number; total: number } | null;
  /** classify: the uploaded image */
  input?: UnitInput;
  /** evaluate: dataset indices of this shard */
  shard?: number[];
  error?: string;
}

export interface Verdict {
  id: string;
  jobId: string;
  index: number;
  input: Omit<UnitInput, "blob">;
  label: number;
  className: string;
  classNames: string[];
  posterior: number[];
  meanError: number[];
  stdError: number[];
  timestepsScored: number[];
  eliminatedAtStage: (number | null)[];
  unetCalls: number;
  /**
   * why scoring stopped: the staged schedule ran out, one class was left, or the budget;
   * "forward" for a discriminative classifier (one pass: no errors, no stages)
   */
  stop?: "stages" | "decided" | "budget" | "forward";
  /** sequential pruning: timesteps scored when each class left the race (null: never) */
  exitAt?: (number | null)[];
  /** null for a discriminative classifier's verdict */
  settings: DCSettings | null;
  bundle: string;
  adapter: string | null;
  worker: { id: string; provider: string };
  timings: { queuedMs: number; computeMs: number };
  createdAt: string;
}

/**
 * admin: manage keys, read the audit log, everything a member may; member: create jobs, uploads
 * and fine-tunes, read the team's results; viewer: read only.
 */
export type Role = "admin" | "member" | "viewer";
export const ROLES: readonly Role[] = ["admin", "member", "viewer"];

export interface ApiKeyRecord {
  id: string;
  name: string;
  /** absent on keys made before roles existed: they keep the full power they had (admin) */
  role?: Role;
  createdAt: string;
  /** the key id that created it (null: the CLI, on the KV directly) */
  createdBy?: string | null;
  /** set once: a revoked key is refused from that moment */
  revokedAt?: string | null;
}

/** One entry of the audit log: who did what to which record, when. */
export interface AuditRecord {
  id: string;
  at: string;
  /** the acting key's id, or "cli" */
  actor: string;
  action: "key.create" | "key.revoke" | "job.create" | "job.cancel" | "adapter.import";
  target: string;
  detail?: Record<string, unknown>;
}
