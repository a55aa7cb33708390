/**
 * Job kind → its unit module: the dispatcher looks `job.kind` up here and never branches on
 * kinds itself. A new kind of work is one new module and one line.
 */
import type { ClassifyJob, EvaluationJob, FinetuneJob, Job } from "../../store/records.ts";
import type { UnitKind } from "../../gpu-worker/protocol.ts";
import { classifyUnits } from "./classify.ts";
import { evaluationUnits } from "./evaluation.ts";
import { finetuneUnits } from "./finetune.ts";
import type { UnitModule } from "./common.ts";

export type { BundleLookup, Outcome, UnitDeps, WorkerInfo } from "./common.ts";

export const UNIT_MODULES: {
  readonly classify: UnitModule<ClassifyJob, "classify">;
  readonly evaluate: UnitModule<EvaluationJob, "evaluation">;
  readonly finetune: UnitModule<FinetuneJob, "finetune">;
} = Object.freeze(
  {
    classify: classifyUnits,
    evaluate: evaluationUnits,
    finetune: finetuneUnits,
  } satisfies { [K in Job["kind"]]: unknown },
);

/**
 * The module for a job. Typed loosely (any job, any kind): `complete` checks `result.kind`
 * against `module.kind` before it is called, the only place the two could disagree.
 */
export function unitModule(job: Job): UnitModule<Job, UnitKind> {
  return UNIT_MODULES[job.kind] as unknown as UnitModule<Job, UnitKind>;
}
