/**
 * The attack configuration: one zod schema for the whole tree (HTTP requests, stored jobs,
 * worker messages, the CLI). A config says everything needed to rerun an attack; absent
 * fields take the attack's defaults in `validateAttack` (lib/attacks/registry.ts).
 */
import { z } from "zod";
import { Seed } from "../seed.ts";

export const AttackConfigSchema = z.object({
  attack: z.string().min(1).max(40).describe(
    "fgsm, fgm, pgd, apgd-ce, apgd-dlr, apgd-t, fab, fab-t, square or autoattack",
  ),
  norm: z.enum(["linf", "l2"]),
  eps: z.number().describe("perturbation budget in the norm, on images in [0, 1]"),
  steps: z.number().int().optional().describe("iterations (PGD, APGD, FAB)"),
  alpha: z.number().positive().optional().describe("PGD step size; default ε/4 (Linf), ε/5 (L2)"),
  restarts: z.number().int().optional(),
  randomStart: z.boolean().optional(),
  eotIter: z.number().int().optional().describe("gradient samples per step (EOT)"),
  version: z.enum(["standard", "plus", "rand"]).optional().describe("AutoAttack version"),
  nTargetClasses: z.number().int().optional(),
  queries: z.number().int().min(1).max(100_000).optional().describe("Square attack queries"),
  seed: Seed.default(0),
}).strict();

/** A config as written (defaults not yet filled); after `validateAttack` it is complete. */
export type AttackConfig = z.output<typeof AttackConfigSchema>;
export type AttackConfigInput = z.input<typeof AttackConfigSchema>;
