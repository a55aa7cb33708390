/**
 * Classify units: one uploaded image each. The worker sends Algorithm 1's numbers; the frontend
 * checks them against the bundle's classes and builds the stored verdict from its own records
 * (input, settings, adapter, timings), so a worker cannot misname what it classified.
 */
import type { ClassifyJob, Unit, Verdict } from "../../store/records.ts";
import { type ClassifyResultMsg, toBase64 } from "../../gpu-worker/protocol.ts";
import { verdictProblem } from "../../lib/result_checks.ts";
import {
  loraOf,
  OK,
  rejected,
  servedBundle,
  STALE,
  type UnitModule,
  type WorkerInfo,
} from "./common.ts";

export const classifyUnits: UnitModule<ClassifyJob, "classify"> = {
  kind: "classify",

  async message({ store }, job, unit, ref) {
    if (!unit.input) throw new Error(`unit ${job.id}/${unit.idx} has no input image`);
    const pixels = await store.getBlob(unit.input.blob);
    if (!pixels) throw new Error(`the image of unit ${job.id}/${unit.idx} is not stored`);
    return {
      type: "unit",
      kind: "classify",
      ...ref,
      bundle: job.bundle,
      adapter: job.adapter,
      lora: await loraOf(store, job.adapter),
      settings: job.settings,
      pixels: toBase64(pixels),
    };
  },

  async complete(deps, job, unit, r, worker) {
    const names = servedBundle(deps, job.bundle).manifest.classes;
    const K = names.length;
    if (!Number.isInteger(r.label) || r.label < 0 || r.label >= K) {
      return rejected(`label ${r.label} is not one of the bundle's ${K} classes`);
    }
    // a discriminative classifier's verdict has a posterior and no error estimates
    const perClass = job.settings === null
      ? [r.posterior]
      : [r.errorSum, r.errorSumSq, r.count, r.posterior, r.meanError, r.stdError];
    if (perClass.some((a) => a.length !== K)) {
      return rejected(`per-class arrays must have ${K} entries`);
    }
    if ((job.settings === null) !== (r.stop === "forward")) {
      return rejected(
        `a ${job.settings === null ? "classifier" : "DC"} job answered by the other kind`,
      );
    }
    if (r.survivors.some((s) => s.some((c) => !Number.isInteger(c) || c < 0 || c >= K))) {
      return rejected("survivors name classes the bundle does not have");
    }
    const problem = verdictProblem(r, job.settings !== null);
    if (problem) return rejected(problem);
    const v = verdict(job, unit, names, r, worker);
    if (!v) return rejected(`unit ${job.id}/${unit.idx} has no input image`);
    return (await deps.store.completeUnit(job.id, unit.idx, r.token, v)) === "ok" ? OK : STALE;
  },
};

/** The stored verdict from the worker's numbers and the frontend's own records. */
function verdict(
  job: ClassifyJob,
  unit: Unit,
  names: readonly string[],
  r: ClassifyResultMsg,
  worker: WorkerInfo,
): Verdict | null {
  if (!unit.input) return null;
  const eliminatedAt = names.map((_, c) => {
    const k = r.survivors.findIndex((alive) => !alive.includes(c));
    return k < 0 ? null : k + 1;
  });
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
    stop: r.stop,
    ...(r.exitAt ? { exitAt: r.exitAt } : {}),
    settings: job.settings,
    bundle: job.bundle,
    adapter: job.adapter,
    worker: { id: worker.id, provider: r.provider },
    timings: {
      queuedMs: Date.now() - Date.parse(job.createdAt) - r.computeMs,
      computeMs: r.computeMs,
    },
    createdAt: new Date().toISOString(),
  };
}
