/**
 * What a caller sees of a job: the stored record without its owner, with progress over its
 * units, the ids of its verdicts (classify) and the errors of failed units. Any key of the
 * deployment may read any job: one deployment is one team.
 */
import { CursorError, type Store } from "../../store/kv_store.ts";
import type { DCSettings } from "../../lib/dc_settings.ts";
import type {
  EvaluationSpec,
  FinetuneJobSpec,
  Job,
  JobKind,
  JobStatus,
  Verdict,
} from "../../store/records.ts";
import { ServiceError } from "../errors.ts";
import type { Caller } from "../context.ts";

export interface JobView {
  id: string;
  kind: JobKind;
  status: JobStatus;
  bundle: string;
  adapter: string | null;
  /** null for a classification by a discriminative classifier */
  settings: DCSettings | null;
  evaluation?: EvaluationSpec;
  finetune?: FinetuneJobSpec;
  total: number;
  done: number;
  failed: number;
  /** finished units plus the running ones' reported fraction, over all units */
  progress: number;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  /** verdict ids ({jobId}.{index}) of finished classify units */
  verdicts: string[];
  errors: { index: number; error: string }[];
}

export async function jobView(store: Store, job: Job): Promise<JobView> {
  const units = await store.listUnits(job.id);
  let progress = 0;
  for (const u of units) {
    if (u.status === "done" || u.status === "failed") progress += 1;
    else if (u.progress && u.progress.total > 0) progress += u.progress.calls / u.progress.total;
  }
  const { owner: _owner, ...rest } = job;
  return {
    ...rest,
    evaluation: job.kind === "evaluate" ? job.evaluation : undefined,
    finetune: job.kind === "finetune" ? job.finetune : undefined,
    progress: units.length ? progress / units.length : 1,
    verdicts: job.kind === "classify"
      ? units.filter((u) => u.status === "done").map((u) => `${job.id}.${u.idx}`)
      : [],
    errors: units.filter((u) => u.status === "failed").map((u) => ({
      index: u.idx,
      error: u.error ?? "failed",
    })),
  };
}

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The job `id` names, of `kind` when given; else a 404 with `code`. */
export async function findJob<K extends JobKind>(
  store: Store,
  id: string,
  kind: K,
  code: string,
  what: string,
): Promise<Extract<Job, { kind: K }>>;
export async function findJob(store: Store, id: string): Promise<Job>;
export async function findJob(
  store: Store,
  id: string,
  kind?: JobKind,
  code = "unknown-job",
  what = "job",
): Promise<Job> {
  const job = UUID.test(id) ? await store.getJob(id) : null;
  if (!job || (kind && job.kind !== kind)) {
    throw new ServiceError(404, code, `no ${what} '${id}'`);
  }
  return job;
}

/** Whether `caller` may see `job`: the team's jobs, and private ones of its own (admins: all). */
export function visibleTo(job: Job, caller?: Caller): boolean {
  return !job.private || !caller || caller.admin || caller.id === job.owner;
}

/** findJob, and a 404 (as for an unknown id) when the job is private and not the caller's. */
export async function findVisible<K extends JobKind>(
  store: Store,
  id: string,
  caller: Caller | undefined,
  kind?: K,
  code = "unknown-job",
  what = "job",
): Promise<Extract<Job, { kind: K }>> {
  const job = kind ? await findJob(store, id, kind, code, what) : await findJob(store, id);
  if (!visibleTo(job, caller)) throw new ServiceError(404, code, `no ${what} '${id}'`);
  return job as Extract<Job, { kind: K }>;
}

/** GET /v1/jobs/{id}: any kind of job. */
export async function jobDetail(store: Store, id: string, caller?: Caller): Promise<JobView> {
  return await jobView(store, await findVisible(store, id, caller));
}

/** Every verdict a job has so far (classify jobs; other kinds have none). */
export async function jobVerdicts(
  store: Store,
  id: string,
  caller?: Caller,
): Promise<{ job: string; verdicts: Verdict[] }> {
  const job = await findVisible(store, id, caller);
  return { job: job.id, verdicts: await store.listVerdicts(job.id) };
}

/** One verdict by its id, `{jobId}.{index}`. */
export async function verdictView(store: Store, id: string, caller?: Caller): Promise<Verdict> {
  const m = /^([0-9a-f-]{36})\.(\d{1,6})$/.exec(id);
  const v = m && UUID.test(m[1]) ? await store.getVerdict(m[1], Number(m[2])) : null;
  const job = v && await store.getJob(v.jobId);
  if (!v || !job || !visibleTo(job, caller)) {
    throw new ServiceError(404, "unknown-verdict", `no verdict '${id}'`);
  }
  return v;
}

/** A page of a kind's jobs, newest first (`next`: the cursor of the following page). */
export async function listJobPage(
  store: Store,
  kind: Job["kind"],
  limit: number,
  cursor?: string,
  caller?: Caller,
): Promise<{ jobs: JobView[]; next: string | null }> {
  // the page is read, then others' private jobs are left out (a page may come back short)
  const page = await paged(() => store.listJobsPage(kind, limit, cursor));
  const shown = page.jobs.filter((j) => visibleTo(j, caller));
  return { jobs: await Promise.all(shown.map((j) => jobView(store, j))), next: page.next };
}

/** A store listing, its cursor errors as a 400 the client can act on. */
export async function paged<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof CursorError) throw new ServiceError(400, "invalid-cursor", e.message);
    throw e;
  }
}
