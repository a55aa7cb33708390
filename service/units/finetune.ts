/**
 * Fine-tune units: one Truth-Maximization run each. The unit resumes from the last stored
 * checkpoint; every checkpoint the worker reaches is stored as an adapter as it arrives (only
 * from the current lease holder, only at a scheduled step, only with the bundle's state size),
 * and the result names the best one by validation robust accuracy.
 */
import { bestCheckpoint } from "../../lib/finetune.ts";
import type { DiffusionManifest } from "../../lib/bundle_manifest.ts";
import type { FinetuneJob } from "../../store/records.ts";
import { fromBase64, toBase64 } from "../../gpu-worker/protocol.ts";
import {
  base64Bytes,
  OK,
  rejected,
  servedBundle,
  STALE,
  type UnitDeps,
  type UnitModule,
} from "./common.ts";

/** Bytes of a fine-tune's state: LoRA tensors, AdamW first and second moments (float32). */
function stateBytes(deps: UnitDeps, job: FinetuneJob): number {
  const m = servedBundle(deps, job.bundle).manifest as DiffusionManifest;
  const floats = m.lora.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  return 3 * floats * 4;
}

export const finetuneUnits: UnitModule<FinetuneJob, "finetune"> = {
  kind: "finetune",

  async message({ store }, job, _unit, ref) {
    const last = await store.latestCheckpoint(job.id);
    return {
      type: "unit",
      kind: "finetune",
      ...ref,
      bundle: job.bundle,
      settings: job.settings,
      finetune: job.finetune,
      resume: last ? { step: last.rec.step, state: toBase64(last.state) } : null,
    };
  },

  async checkpoint(deps, job, _unit, msg) {
    if (!job.finetune.checkpoints.includes(msg.step)) {
      return rejected(`step ${msg.step} is not one of the checkpoints ${job.finetune.checkpoints}`);
    }
    const want = stateBytes(deps, job);
    if (base64Bytes(msg.state) !== want) {
      return rejected(`checkpoint state has ${base64Bytes(msg.state)} bytes, not ${want}`);
    }
    const id = await deps.store.putCheckpoint(msg, {
      bundle: job.bundle,
      jobId: job.id,
      owner: job.owner,
      ...(job.private ? { private: true } : {}),
      step: msg.step,
      loss: msg.loss,
      validation: msg.validation,
      finetune: job.finetune,
    }, fromBase64(msg.state));
    return id === "stale" ? STALE : OK;
  },

  async complete(deps, job, unit, r, worker) {
    const cps = await deps.store.listCheckpoints(job.id);
    const best = bestCheckpoint(cps);
    if (!best) return rejected("the run ended without storing a checkpoint");
    const done = await deps.store.completeFinetuneUnit(job.id, unit.idx, r.token, {
      best: best.id,
      bestStep: best.step,
      checkpoints: cps.map((a) => ({
        step: a.step,
        adapter: a.id,
        loss: a.loss,
        validation: a.validation,
      })),
      computeMs: r.computeMs,
      worker: { id: worker.id, provider: r.provider },
    });
    return done === "ok" ? OK : STALE;
  },
};
