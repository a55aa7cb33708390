/**
 * A Truth-Maximization run as stored and sent to a worker: one zod schema (the HTTP request
 * adds defaults on top of it in service/jobs/finetune.ts, the CLI builds it from flags).
 */
import { z } from "zod";
import { AttackConfigSchema } from "./attacks/config.ts";
import { Seed } from "./seed.ts";

export const TMHyperSchema = z.object({
  lr: z.number().positive().max(1),
  beta1: z.number().min(0).lt(1),
  beta2: z.number().min(0).lt(1),
  weightDecay: z.number().min(0).max(1),
  adamEps: z.number().positive().max(1),
  warmupSteps: z.number().int().min(0).max(1_000_000),
  batchSize: z.number().int().min(1).max(256),
  steps: z.number().int().min(1).max(100_000),
}).strict();

export const FinetuneJobSpec = z.object({
  hyper: TMHyperSchema,
  seed: Seed,
  /** complete (validated) attack on the source per batch; null trains on clean images */
  attack: AttackConfigSchema.nullable(),
  source: z.object({ kind: z.literal("surrogate"), bundle: z.string().min(1) }).strict(),
  checkpoints: z.array(z.number().int().positive()).min(1),
  validation: z.object({ n: z.number().int().min(1), seed: z.number().int().min(0) }).strict(),
  /** 0/absent: attack every batch online; P: draw batches from P training images attacked once */
  pool: z.number().int().min(0).optional(),
  /** the training and validation images: Fashion-MNIST's (absent) or CIFAR-10's local files */
  data: z.enum(["fashion-mnist", "cifar10"]).optional(),
}).strict();
export type FinetuneJobSpec = z.infer<typeof FinetuneJobSpec>;

export const CheckpointScore = z.object({
  n: z.number().int(),
  clean_accuracy: z.number(),
  robust_accuracy: z.number(),
});
export type CheckpointScore = z.infer<typeof CheckpointScore>;
