/**
 * Per-key admission: at most `quotaActiveJobs` jobs with work left per key, and at most
 * `quotaDailyCalls` estimated model calls submitted per key and UTC day (charged when a job is
 * admitted, not refunded). Beyond either: 429 with Retry-After.
 */
import type { ServiceDeps } from "./context.ts";
import { ServiceError } from "./errors.ts";

export async function admitJob(deps: ServiceDeps, owner: string, calls: number): Promise<void> {
  const { quotaActiveJobs, quotaDailyCalls } = deps.config.limits;
  if (quotaActiveJobs > 0) {
    const n = await deps.store.countActiveJobs(owner);
    if (n >= quotaActiveJobs) {
      throw new ServiceError(
        429,
        "too-many-active-jobs",
        `this key has ${n} jobs with work left; at most ${quotaActiveJobs} at once`,
        { limit: quotaActiveJobs },
        { "Retry-After": "30" },
      );
    }
  }
  if (quotaDailyCalls > 0) {
    const now = new Date();
    const day = now.toISOString().slice(0, 10);
    const r = await deps.store.chargeDaily(owner, day, Math.ceil(calls), quotaDailyCalls);
    if (!r.ok) {
      const midnight = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1);
      throw new ServiceError(
        429,
        "over-daily-quota",
        `this job needs ~${
          Math.ceil(calls)
        } model calls; this key has used ${r.used} of its ${quotaDailyCalls} today (UTC)`,
        { limit: quotaDailyCalls, used: r.used },
        { "Retry-After": String(Math.ceil((midnight - now.getTime()) / 1000)) },
      );
    }
  }
}
