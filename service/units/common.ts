/**
 * What every job kind's unit module implements, and the helpers they share. A unit module is
 * the frontend side of one kind of work: the unit message for a leased unit, and the checks and
 * storage of what a worker sends back. service/units/mod.ts lists them by job kind.
 */
import { bundleShape, type LoadedBundle } from "../../lib/bundle.ts";
import type { Store } from "../../store/kv_store.ts";
import type { CleanImages } from "../clean_images.ts";
import type { Job, Unit } from "../../store/records.ts";
import {
  type CheckpointMsg,
  type FrontendUnit,
  toBase64,
  type UnitKind,
  type UnitRef,
  type WorkerResult,
} from "../../gpu-worker/protocol.ts";

/** The bundles the frontend serves (the model registry), by id. */
export interface BundleLookup {
  readonly bundles: ReadonlyMap<string, LoadedBundle>;
}

export interface UnitDeps {
  store: Store;
  registry: BundleLookup;
  /** the datasets' clean images, to check what workers send back against */
  images: CleanImages;
}

/** The worker a result came from, as the stored records name it. */
export interface WorkerInfo {
  id: string;
}

/** What became of a result or checkpoint: stored, stale (the lease was lost), or refused. */
export type Outcome = { status: "ok" | "stale" } | { status: "rejected"; reason: string };
export const OK: Outcome = { status: "ok" };
export const STALE: Outcome = { status: "stale" };
export const rejected = (reason: string): Outcome => ({ status: "rejected", reason });

/** The frontend side of one job kind. */
export interface UnitModule<J extends Job, K extends UnitKind> {
  /** the protocol kind of this job kind's units and results */
  readonly kind: K;
  /** The unit message for a leased unit; throws when the job's stored inputs are unusable. */
  message(
    deps: UnitDeps,
    job: J,
    unit: Unit,
    ref: UnitRef,
  ): Promise<Extract<FrontendUnit, { kind: K }>>;
  /** Check a result against its unit and store it (guarded by the lease token). */
  complete(
    deps: UnitDeps,
    job: J,
    unit: Unit,
    result: Extract<WorkerResult, { kind: K }>,
    worker: WorkerInfo,
  ): Promise<Outcome>;
  /** Check and store an intermediate checkpoint (only kinds that make them). */
  checkpoint?(deps: UnitDeps, job: J, unit: Unit, msg: CheckpointMsg): Promise<Outcome>;
}

/** A bundle the registry serves, or an error naming it (the job outlived its bundle). */
export function servedBundle(deps: UnitDeps, id: string): LoadedBundle {
  const b = deps.registry.bundles.get(id);
  if (!b) throw new Error(`bundle ${id} is no longer served`);
  return b;
}

/** float32 values per image of a bundle. */
export function imageFloats(b: LoadedBundle): number {
  const s = bundleShape(b.manifest);
  return s.channels * s.height * s.width;
}

/** An adapter's LoRA tensors (base64), or null for the base model; throws if unreadable. */
export async function loraOf(store: Store, adapter: string | null): Promise<string | null> {
  if (!adapter) return null;
  const rec = await store.getAdapter(adapter);
  if (!rec) throw new Error(`adapter ${adapter} is not stored`);
  return toBase64(await store.adapterLora(rec));
}

/** Bytes a base64 string decodes to (without decoding it); -1 if it is not padded base64. */
export function base64Bytes(s: string): number {
  if (s.length % 4 !== 0) return -1;
  const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  return (s.length / 4) * 3 - pad;
}
