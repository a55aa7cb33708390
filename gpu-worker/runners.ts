/**
 * One unit runner per kind, as a table: the compute slot looks a unit's `kind` up here. Each
 * runner takes the slot's models and the unit message and returns the result body; it reports
 * progress and (fine-tune) checkpoints through the context, never over the socket itself.
 */
import { runClassifyUnit } from "./classify_unit.ts";
import { runEvalUnit } from "./evaluation_unit.ts";
import { runFinetuneUnit } from "./finetune_unit.ts";
import type { WorkerModels } from "./models.ts";
import type {
  CheckpointMsg,
  FrontendUnit,
  Progress,
  ResultBody,
  UnitKind,
  WorkerResult,
} from "./protocol.ts";

export interface RunnerContext {
  /** the latest progress; the next heartbeat carries it */
  progress(p: Progress): void;
  /** a message to the frontend before the result (a fine-tune's checkpoints) */
  send(m: CheckpointMsg): void;
}

type Runner<K extends UnitKind> = (
  models: WorkerModels,
  msg: Extract<FrontendUnit, { kind: K }>,
  ctx: RunnerContext,
) => Promise<ResultBody<K>>;

export const RUNNERS: { readonly [K in UnitKind]: Runner<K> } = Object.freeze({
  classify: runClassifyUnit,
  evaluation: runEvalUnit,
  finetune: runFinetuneUnit,
});

/** Run a unit with its kind's runner; the result message carries the unit's reference. */
export async function runUnit(
  models: WorkerModels,
  msg: FrontendUnit,
  ctx: RunnerContext,
): Promise<WorkerResult> {
  const run = RUNNERS[msg.kind] as Runner<typeof msg.kind>;
  const body = await run(models, msg as never, ctx);
  return {
    ...body,
    type: "result",
    kind: msg.kind,
    jobId: msg.jobId,
    idx: msg.idx,
    token: msg.token,
  } as WorkerResult;
}
