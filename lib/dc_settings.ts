/**
 * The diffusion classifier's settings: one zod schema for the whole tree (requests, worker
 * messages, stored jobs, the CLI), the paper's defaults, and the bundle's documented default.
 * `DCSettings` is the schema's type; `lib/diffusion_classifier.ts` runs it.
 */
import { z } from "zod";
import type { DiffusionManifest } from "./bundle_manifest.ts";
import { Seed } from "./seed.ts";

const Stage = z.object({
  nSamples: z.number().int().min(1).max(1000).describe(
    "timesteps scored in this stage (Li et al.'s subgrid size)",
  ),
  keep: z.number().int().min(1).describe("classes kept after this stage"),
});

/** Complete settings, as stored with every job and sent to workers. */
export const DCSettingsSchema = z.object({
  stages: z.array(Stage).min(1).max(6),
  gridSize: z.number().int().min(1).max(1000),
  tRange: z.tuple([z.number().int().min(0), z.number().int().min(1)]),
  error: z.enum(["l2", "l1"]),
  timesteps: z.enum(["even", "stratified"]),
  seed: Seed,
  /** posterior = softmax(−meanError · posteriorScale) */
  posteriorScale: z.number().positive().max(1e9),
  /**
   * Sequential class pruning with a paired test (lib/class_pruning.ts) instead of the staged
   * schedule: when present, `stages` are not used.
   */
  sequential: z.object({
    z: z.number().positive().max(20),
    batch: z.number().int().min(1).max(1000),
    // at least 2: a paired difference needs two timesteps for its standard error
    minTimesteps: z.number().int().min(2).max(1000),
    maxTimesteps: z.number().int().min(2).max(1000),
    orderSeed: Seed,
  }).strict().optional(),
  /**
   * Per-timestep weights, one per grid index, learned on validation (lib/timestep_weights.ts):
   * every error is multiplied by its timestep's weight before it is summed, ranked or tested.
   * They belong to one grid and error norm: see `resolveSettings`.
   */
  weights: z.array(z.number().positive().max(1e6)).min(1).max(1000).optional(),
  /**
   * "secret": the noise seed is drawn per request from the server's CSPRNG (`withRequestSeed`),
   * so an attacker cannot know the classifier's draws and must average over them (EOT); an
   * evaluation scores such a target with a draw its attack never uses (seed + 1). Absent or
   * "fixed": `seed` is used as given (the classifier is a deterministic function).
   */
  seedMode: z.enum(["fixed", "secret"]).optional(),
}).strict();
export type DCSettings = z.infer<typeof DCSettingsSchema>;
export type Stage = DCSettings["stages"][number];

/**
 * What a user may send: any subset, completed with the bundle's default. `sequential: null`
 * turns a default's sequential pruning off; so does sending `stages` without `sequential`.
 * `weights: null` turns the default's timestep weights off; so does changing the grid, the
 * timestep range, the timestep mode or the error norm without sending weights.
 */
export const DCSettingsOverrides = DCSettingsSchema.partial().extend({
  sequential: DCSettingsSchema.shape.sequential.unwrap().nullable().optional(),
  weights: DCSettingsSchema.shape.weights.unwrap().nullable().optional(),
}).strict().describe("overrides of the bundle's default diffusion-classifier settings");
export type DCSettingsOverrides = z.infer<typeof DCSettingsOverrides>;

/** The paper's CIFAR-10 schedule: 50 samples for all classes, keep 5, then 500. */
export const PAPER_SETTINGS: Readonly<DCSettings> = Object.freeze({
  stages: [{ nSamples: 50, keep: 5 }, { nSamples: 500, keep: 1 }],
  gridSize: 500,
  tRange: [0, 1000] as [number, number],
  error: "l2" as const,
  timesteps: "even" as const,
  seed: 0,
  posteriorScale: 1,
});

export class SettingsError extends RangeError {
  override name = "SettingsError";
}

/** The bundle's documented default settings, completed with the paper's where absent. */
export function defaultSettings(m: DiffusionManifest): DCSettings {
  return { ...PAPER_SETTINGS, ...(m.dc_default ?? {}) } as DCSettings;
}

/**
 * The bundle's default with `overrides` applied, checked against the bundle (class count,
 * timestep range). Throws SettingsError with a message a user can act on.
 */
export function resolveSettings(
  m: DiffusionManifest,
  overrides: DCSettingsOverrides = {},
): DCSettings {
  const { sequential, weights, ...rest } = overrides;
  const base = defaultSettings(m);
  const s = { ...base, ...rest } as DCSettings;
  // a staged schedule asked for by its stages replaces a sequential default
  if (sequential === null || (sequential === undefined && rest.stages)) delete s.sequential;
  else if (sequential) s.sequential = sequential;
  // weights were learned for one grid and norm: another one without its own weights drops them
  const regridded = (["gridSize", "tRange", "timesteps", "error"] as const).some((k) =>
    rest[k] !== undefined && JSON.stringify(rest[k]) !== JSON.stringify(base[k])
  );
  if (weights === null || (weights === undefined && regridded)) delete s.weights;
  else if (weights) s.weights = weights;
  checkSettings(s, m.classes.length, m.schedule.num_timesteps);
  return s;
}

/**
 * The settings one request runs with: under seedMode "secret", a fresh 32-bit seed from the
 * CSPRNG (stored with the job, so a verdict stays reproducible; knowing a past request's seed
 * tells nothing about the next one's).
 */
export function withRequestSeed(
  s: DCSettings,
  random: (a: Uint32Array) => Uint32Array = (a) => crypto.getRandomValues(a),
): DCSettings {
  return s.seedMode === "secret" ? { ...s, seed: random(new Uint32Array(1))[0] } : s;
}

/** Structural checks the schema cannot express (they depend on the bundle). */
export function checkSettings(s: DCSettings, numClasses: number, numTimesteps: number): void {
  if (s.stages.length === 0) throw new SettingsError("at least one stage is required");
  if (s.stages[s.stages.length - 1].keep !== 1) {
    throw new SettingsError("the last stage must keep 1 class");
  }
  for (const st of s.sequential ? [] : s.stages) { // stages are unused under sequential pruning
    if (st.nSamples < 1 || st.nSamples > s.gridSize) {
      throw new SettingsError("stage nSamples must be in [1, gridSize]");
    }
    if (st.keep < 1 || st.keep > numClasses) {
      throw new SettingsError(`stage keep must be in [1, ${numClasses}]`);
    }
  }
  if (s.sequential) {
    const q = s.sequential;
    if (q.maxTimesteps > s.gridSize || q.minTimesteps > q.maxTimesteps || q.minTimesteps < 2) {
      throw new SettingsError("sequential: need 2 ≤ minTimesteps ≤ maxTimesteps ≤ gridSize");
    }
  }
  if (s.weights && s.weights.length !== s.gridSize) {
    throw new SettingsError(`weights: ${s.weights.length} given for a grid of ${s.gridSize}`);
  }
  if (s.tRange[0] < 0 || s.tRange[1] > numTimesteps || s.tRange[0] >= s.tRange[1]) {
    throw new SettingsError(`tRange must satisfy 0 <= lo < hi <= ${numTimesteps}`);
  }
}
