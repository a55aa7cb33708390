/**
 * The model-bundle contract (DESIGN.md §2), as written by `compiler/tmdc_compiler/bundle.py`.
 * Parsing is strict: a manifest missing a field is refused with the field's path.
 */
import { z } from "zod";

const TensorSpec = z.object({
  name: z.string(),
  dtype: z.enum(["float32", "int64", "int32", "float64"]),
  shape: z.array(z.union([z.number().int().nonnegative(), z.string()])),
});

const Graph = z.object({
  file: z.string(),
  data_file: z.string().nullable().optional(),
  inputs: z.array(TensorSpec),
  outputs: z.array(TensorSpec),
  batch: z.union([
    z.object({ kind: z.literal("dynamic") }),
    z.object({ kind: z.literal("fixed"), size: z.number().int().positive() }),
  ]),
});
export type GraphSpec = z.infer<typeof Graph>;

const Common = {
  schema_version: z.literal(1),
  name: z.string().min(1),
  version: z.string().min(1),
  image: z.object({
    channels: z.number().int().positive(),
    height: z.number().int().positive(),
    width: z.number().int().positive(),
    value_range: z.tuple([z.number(), z.number()]),
  }),
  classes: z.array(z.string()).min(2),
  provenance: z.record(z.string(), z.unknown()),
  /** architecture and size (free-form, as the compiler wrote it) */
  model: z.record(z.string(), z.unknown()).optional(),
  files: z.record(z.string(), z.string().regex(/^[0-9a-f]{64}$/)),
};

const DiffusionFields = {
  ...Common,
  null_class: z.number().int().nonnegative(),
  schedule: z.object({
    /** linear β, or Stable Diffusion's scaled-linear β (√β linear from √start to √end) */
    kind: z.enum(["ddpm_linear", "scaled_linear"]),
    num_timesteps: z.number().int().positive(),
    beta_start: z.number(),
    beta_end: z.number(),
  }),
  lora: z.object({
    rank: z.number().int().positive(),
    alpha: z.number(),
    targets: z.array(z.string()),
    tensors: z.array(z.object({ name: z.string(), shape: z.array(z.number().int().positive()) })),
  }),
  dc_default: z.record(z.string(), z.unknown()).optional(),
};

/** A pixel-space class-conditional model (the embedded default). */
export const PixelDiffusionManifest = z.object({
  ...DiffusionFields,
  kind: z.literal("diffusion"),
  // DiffPure's reverse process (lib/diffpure.ts) knows the linear schedule only
  schedule: DiffusionFields.schedule.extend({ kind: z.literal("ddpm_linear") }),
  graphs: z.object({ eps_loss: Graph, eps_loss_vjp_x: Graph, eps_loss_grad_lora: Graph }).catchall(
    Graph,
  ),
});

/**
 * A latent text-conditioned model (Stable Diffusion, `tmdc_compiler.convert_sd`): `encode`
 * takes the image to the VAE latent (resampled, scaled to the pixel range, latent mean × the
 * scaling factor) and the loss graphs run on latents; class c's text embedding is stored in the
 * weights (the null class: the empty prompt).
 */
export const LatentDiffusionManifest = z.object({
  ...DiffusionFields,
  kind: z.literal("latent-diffusion"),
  latent: z.object({
    channels: z.number().int().positive(),
    height: z.number().int().positive(),
    width: z.number().int().positive(),
    /** the side the image is resampled to before the VAE */
    resolution: z.number().int().positive(),
    resampling: z.enum(["bicubic"]),
    pixel_range: z.tuple([z.number(), z.number()]),
    scaling_factor: z.number().positive(),
  }),
  prediction_type: z.enum(["epsilon", "v_prediction"]),
  conditioning: z.object({
    kind: z.literal("text"),
    template: z.string(),
    prompts: z.array(z.string()),
    null_prompt: z.string(),
  }).passthrough(),
  /** compute dtype of the graphs (their inputs and outputs are float32 either way) */
  dtype: z.enum(["float32", "float16"]),
  graphs: z.object({
    encode: Graph,
    encode_vjp_x: Graph,
    eps_loss: Graph,
    eps_loss_vjp_x: Graph,
    eps_loss_grad_lora: Graph,
  }).catchall(Graph),
});
export type LatentDiffusionManifest = z.infer<typeof LatentDiffusionManifest>;
export type PixelDiffusionManifest = z.infer<typeof PixelDiffusionManifest>;
/** Either kind of diffusion bundle: both classify, attack and fine-tune through one interface. */
export type DiffusionManifest = PixelDiffusionManifest | LatentDiffusionManifest;

export const ClassifierManifest = z.object({
  ...Common,
  kind: z.literal("classifier"),
  graphs: z.object({ logits: Graph, logits_vjp_x: Graph }).catchall(Graph),
  /** how a baseline was trained (absent: the surrogate, trained clean) */
  training: z.object({
    method: z.string(),
    adversarial: z.object({
      norm: z.enum(["linf", "l2"]),
      eps: z.number().positive(),
      steps: z.number().int().positive(),
      step_size: z.number().positive(),
    }).passthrough().nullable(),
    epochs: z.number().int().positive(),
  }).optional(),
});
export type ClassifierManifest = z.infer<typeof ClassifierManifest>;

export const Manifest = z.discriminatedUnion("kind", [
  PixelDiffusionManifest,
  LatentDiffusionManifest,
  ClassifierManifest,
]);
export type Manifest = z.infer<typeof Manifest>;

export class BundleError extends Error {
  override name = "BundleError";
}

/** Parse a manifest; the error names the first offending field path. */
export function parseManifest(json: unknown, where = "manifest.json"): Manifest {
  const r = Manifest.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue.path.join(".") || "(root)";
    const missing = issue.code === "invalid_type" &&
      (issue as { input?: unknown }).input === undefined;
    throw new BundleError(
      missing ? `${where} is missing the field ${path}` : `${where}: ${path}: ${issue.message}`,
    );
  }
  return r.data;
}
