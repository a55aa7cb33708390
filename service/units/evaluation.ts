/**
 * Evaluation units: one shard of dataset indices each. The unit carries the whole spec, and
 * the stored adversarial examples when the whole shard has them (made once per attack, source
 * and subset, reused by every target). A result must cover exactly the shard's indices, and
 * its new adversarial examples must be whole images of the target's shape.
 */
import type { EvaluationJob } from "../../store/records.ts";
import { fromBase64, toBase64 } from "../../gpu-worker/protocol.ts";
import { lpDistance } from "../../lib/attacks/projections.ts";
import { adversarialProblem } from "../../lib/result_checks.ts";
import {
  base64Bytes,
  imageFloats,
  loraOf,
  OK,
  rejected,
  servedBundle,
  STALE,
  type UnitModule,
} from "./common.ts";

export const evaluationUnits: UnitModule<EvaluationJob, "evaluation"> = {
  kind: "evaluation",

  async message({ store }, job, unit, ref) {
    const ev = job.evaluation;
    const indices = unit.shard ?? [];
    const stored = await Promise.all(indices.map((i) => store.getAdversarial(ev.setKey, i)));
    let adv: string[] | null = null;
    if (stored.every((r) => r !== null)) {
      const blobs = await Promise.all(stored.map((r) => store.getBlob(r!.blob)));
      if (blobs.every((b) => b !== null)) adv = blobs.map((b) => toBase64(b!));
    }
    let images: { pixels: string[]; labels: number[] } | null = null;
    if (ev.dataset.name === "uploaded") {
      const ds = await store.getDataset(ev.dataset.id);
      const all = ds && await store.getBlob(ds.pixelsBlob);
      if (!ds || !all) throw new Error(`dataset ${ev.dataset.id} is not stored`);
      const bytesPer = all.length / ds.n;
      images = {
        pixels: indices.map((i) => toBase64(all.subarray(i * bytesPer, (i + 1) * bytesPer))),
        labels: indices.map((i) => ds.labels[i]),
      };
    }
    return {
      type: "unit",
      kind: "evaluation",
      ...ref,
      spec: ev,
      settings: job.settings,
      lora: await loraOf(store, job.adapter),
      indices,
      images,
      adv,
    };
  },

  async complete(deps, job, unit, r, worker) {
    const ev = job.evaluation;
    const target = servedBundle(deps, ev.target.bundle);
    const K = target.manifest.classes.length;
    const shard = unit.shard ?? [];
    const got = r.items.map((it) => it.index);
    if (got.length !== shard.length || got.some((index, i) => index !== shard[i])) {
      return rejected(`items cover indices [${got}], the shard is [${shard}]`);
    }
    const inRange = (p: number, min: number) => Number.isInteger(p) && p >= min && p < K;
    if (
      r.items.some((it) =>
        !inRange(it.label, 0) || !inRange(it.cleanPred, -1) || !inRange(it.advPred, -1)
      )
    ) {
      return rejected(`a label or prediction is not one of the target's ${K} classes`);
    }
    if (r.items.some((it) => it.fresh?.some((p) => !inRange(p, -1)))) {
      return rejected("a re-scored prediction is not one of the target's classes");
    }
    if (r.perAttack?.some((a) => a.robust > a.total || a.total > shard.length)) {
      return rejected("a per-attack count exceeds the shard");
    }
    const clean = await deps.images.rows(ev.dataset, shard);
    const wrongLabel = clean && r.items.find((it, i) => it.label !== clean.labels[i]);
    if (wrongLabel) {
      return rejected(
        `item ${wrongLabel.index} is labelled ${wrongLabel.label}, the dataset says otherwise`,
      );
    }
    const bytes = imageFloats(target) * 4;
    const fresh = r.items.filter((it) => it.adv !== null);
    if (fresh.length > 0 && fresh.length < r.items.length) {
      return rejected("adversarial examples for only part of the shard");
    }
    const bad = fresh.find((it) => base64Bytes(it.adv!) !== bytes);
    if (bad) {
      return rejected(
        `adversarial example ${bad.index} has ${base64Bytes(bad.adv!)} bytes, not ${bytes}`,
      );
    }
    // every new example must lie in the attack's ball around its clean image, inside the
    // bundle's value range: they join the shared set that later evaluations reuse
    const range = target.manifest.image.value_range as [number, number];
    const pixels = new Map(
      fresh.map((it) => [it.index, new Float32Array(fromBase64(it.adv!).slice().buffer)]),
    );
    for (const [k, it] of r.items.entries()) {
      const adv = pixels.get(it.index);
      if (!adv) continue;
      const problem = clean
        ? adversarialProblem(clean.images[k], adv, ev.attack.norm, ev.attack.eps, range)
        : adversarialProblem(adv, adv, ev.attack.norm, ev.attack.eps, range); // range only
      if (problem) return rejected(`adversarial example ${it.index}: ${problem}`);
      if (clean) it.dist = lpDistance(ev.attack.norm, adv, clean.images[k]); // ours, not the worker's
    }
    if (fresh.length === 0) {
      // nothing new: the stored set must already hold every example the shard was scored on
      const stored = await Promise.all(shard.map((i) => deps.store.getAdversarial(ev.setKey, i)));
      if (stored.some((s) => s === null)) {
        return rejected("no adversarial examples were returned and the shard has none stored");
      }
    }
    await deps.store.putAdversarial(
      ev.setKey,
      fresh.map((it) => ({ index: it.index, label: it.label, pixels: fromBase64(it.adv!) })),
    );
    const result = {
      items: r.items.map(({ adv: _adv, ...it }) => it),
      perAttack: r.perAttack,
      reusedAdversarial: fresh.length === 0,
      computeMs: r.computeMs,
      worker: { id: worker.id, provider: r.provider },
    };
    const stored = await deps.store.completeEvalUnit(job.id, unit.idx, r.token, result);
    return stored === "ok" ? OK : STALE;
  },
};
