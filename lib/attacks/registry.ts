/**
 * Attack name → defaults, validation and runner (a dispatch table, not an if-chain).
 * An AttackConfig says everything needed to rerun an attack; `validateAttack` refuses
 * bad configurations with a message a user can act on.
 */
import { apgd, type ApgdLoss } from "./apgd.ts";
import { autoAttack } from "./autoattack.ts";
import type { AttackConfig } from "./config.ts";
import { fab } from "./fab.ts";
import { fgsm } from "./fgsm.ts";
import type { GradientOracle } from "./oracle.ts";
import { pgd } from "./pgd.ts";
import type { Norm } from "./projections.ts";
import { square, SQUARE_AUTOATTACK } from "./square.ts";
import { PortableRandom } from "../rng.ts";
import type { ImageShape } from "../model.ts";

export interface AttackOutcome {
  xAdv: Float32Array;
  perAttack?: { attack: string; robustAccuracy: number; seconds: number }[];
  warnings?: string[];
}

interface AttackEntry {
  norms: readonly Norm[];
  defaults: (norm: Norm) => Partial<AttackConfig>;
  /** gradient evaluations per image, for the quota */
  cost: (
    c: Required<Pick<AttackConfig, "steps" | "restarts" | "eotIter">> & AttackConfig,
    k: number,
  ) => number;
  run: (
    o: GradientOracle,
    x: Float32Array,
    y: Int32Array,
    c: AttackConfig,
    shape: ImageShape,
  ) => Promise<AttackOutcome>;
}

const apgdEntry = (loss: ApgdLoss): AttackEntry => ({
  norms: ["linf", "l2"],
  defaults: () => ({ steps: 100, restarts: 1, eotIter: 1, nTargetClasses: 9 }),
  cost: (c) =>
    c.steps * c.restarts * c.eotIter * (loss === "dlr-targeted" ? (c.nTargetClasses ?? 9) : 1),
  run: async (o, x, y, c) => ({
    xAdv: (await apgd(o, x, y, {
      norm: c.norm,
      eps: c.eps,
      nIter: c.steps!,
      nRestarts: c.restarts!,
      loss,
      eotIter: c.eotIter,
      nTargetClasses: c.nTargetClasses,
    }, new PortableRandom(c.seed, 1))).xAdv,
  }),
});

const fabEntry = (targeted: boolean): AttackEntry => ({
  norms: ["linf", "l2"],
  defaults: () => ({ steps: 100, restarts: targeted ? 1 : 5, nTargetClasses: 9 }),
  cost: (c, k) => c.steps * c.restarts * (targeted ? (c.nTargetClasses ?? 9) : k),
  run: async (o, x, y, c) => ({
    xAdv: (await fab(o, x, y, {
      norm: c.norm,
      eps: c.eps,
      nIter: c.steps!,
      nRestarts: c.restarts!,
      targeted,
      nTargetClasses: c.nTargetClasses,
    }, new PortableRandom(c.seed, 2))).xAdv,
  }),
});

const TABLE: Record<string, AttackEntry> = {
  fgsm: {
    norms: ["linf"],
    defaults: () => ({ steps: 1, restarts: 1, eotIter: 1 }),
    cost: (c) => c.eotIter,
    run: async (o, x, y, c) => ({ xAdv: await fgsm(o, x, y, { eps: c.eps, eotIter: c.eotIter }) }),
  },
  // FGSM's L2 counterpart (one normalised-gradient step); torchattacks' FGSM is Linf only.
  fgm: {
    norms: ["l2"],
    defaults: () => ({ steps: 1, restarts: 1, eotIter: 1 }),
    cost: (c) => c.eotIter,
    run: async (o, x, y, c) => ({
      xAdv: await fgsm(o, x, y, { eps: c.eps, norm: "l2", eotIter: c.eotIter }),
    }),
  },
  pgd: {
    norms: ["linf", "l2"],
    defaults: () => ({ steps: 40, restarts: 1, eotIter: 1, randomStart: true }),
    cost: (c) => c.steps * c.eotIter,
    run: async (o, x, y, c) => ({
      xAdv: await pgd(o, x, y, {
        norm: c.norm,
        eps: c.eps,
        // torchattacks' defaults scale with ε: α = ε/4 (Linf 2/255 at 8/255), α = ε/5 (L2 0.2 at 1.0)
        alpha: c.alpha ?? (c.norm === "linf" ? c.eps / 4 : c.eps / 5),
        steps: c.steps!,
        randomStart: c.randomStart ?? true,
        eotIter: c.eotIter,
      }, new PortableRandom(c.seed, 3)),
    }),
  },
  "apgd-ce": apgdEntry("ce"),
  "apgd-dlr": apgdEntry("dlr"),
  "apgd-t": apgdEntry("dlr-targeted"),
  fab: fabEntry(false),
  "fab-t": fabEntry(true),
  square: {
    norms: ["linf", "l2"],
    defaults: () => ({ queries: 5000, restarts: 1, steps: 1, eotIter: 1 }),
    cost: (c) => (c.queries ?? 5000) * c.restarts,
    run: async (o, x, y, c, shape) => ({
      xAdv: (await square(o, shape, x, y, {
        ...SQUARE_AUTOATTACK,
        norm: c.norm,
        eps: c.eps,
        nQueries: c.queries ?? 5000,
        nRestarts: c.restarts!,
      }, new PortableRandom(c.seed, 4))).xAdv,
    }),
  },
  autoattack: {
    norms: ["linf", "l2"],
    defaults: () => ({ version: "standard", steps: 100, restarts: 1, eotIter: 1 }),
    cost: (
      c,
      k,
    ) => (c.version === "plus"
      ? 5 * 100 * 2 + 5 * 100 * k + 5000 + 9 * 100 * 2
      : 100 + 900 + 900 + 5000),
    run: async (o, x, y, c, shape) => {
      const r = await autoAttack(o, x, y, {
        norm: c.norm,
        eps: c.eps,
        version: c.version ?? "standard",
        seed: c.seed,
        shape,
      });
      return { xAdv: r.xAdv, perAttack: r.perAttack, warnings: r.warnings };
    },
  },
};
export const ATTACKS: Readonly<Record<string, AttackEntry>> = Object.freeze(TABLE);

export class AttackConfigError extends Error {
  override name = "AttackConfigError";
}

/** Fill defaults and refuse what cannot run: unknown attack, ε out of range, norm mismatch, over quota. */
export function validateAttack(
  c: AttackConfig,
  numClasses: number,
  maxGradientsPerImage: number,
): AttackConfig {
  const entry = ATTACKS[c.attack];
  if (!entry) {
    throw new AttackConfigError(
      `unknown attack '${c.attack}'; one of ${Object.keys(ATTACKS).join(", ")}`,
    );
  }
  if (!entry.norms.includes(c.norm)) {
    throw new AttackConfigError(
      `attack '${c.attack}' supports ${entry.norms.join(", ")}, not ${c.norm}`,
    );
  }
  if (!(c.eps >= 0) || (c.norm === "linf" && c.eps > 1)) {
    throw new AttackConfigError(
      `eps must be ≥ 0${c.norm === "linf" ? " and ≤ 1 for linf" : ""}, got ${c.eps}`,
    );
  }
  const full = {
    ...entry.defaults(c.norm),
    ...Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)),
  } as
    & AttackConfig
    & Required<Pick<AttackConfig, "steps" | "restarts" | "eotIter">>;
  full.eotIter ??= 1;
  for (
    const [k, v] of [["steps", full.steps], ["restarts", full.restarts], [
      "eotIter",
      full.eotIter,
    ]] as const
  ) {
    if (!Number.isInteger(v) || v < 1) {
      throw new AttackConfigError(`${k} must be a positive integer, got ${v}`);
    }
  }
  if (full.nTargetClasses !== undefined && full.nTargetClasses > numClasses - 1) {
    throw new AttackConfigError(`nTargetClasses must be ≤ ${numClasses - 1}`);
  }
  const cost = entry.cost(full, numClasses);
  if (cost > maxGradientsPerImage) {
    throw new AttackConfigError(
      `this attack needs ~${cost} model evaluations per image; the quota is ${maxGradientsPerImage}`,
    );
  }
  return full;
}

export function runAttack(
  o: GradientOracle,
  x: Float32Array,
  y: Int32Array,
  c: AttackConfig,
  shape: ImageShape,
) {
  return ATTACKS[c.attack].run(o, x, y, c, shape);
}

/** Model evaluations per image of a validated config (what the quota counts). */
export function attackCost(c: AttackConfig, numClasses: number): number {
  const e = ATTACKS[c.attack];
  const full = { steps: 1, restarts: 1, eotIter: 1, ...e.defaults(c.norm), ...c };
  return e.cost(full as Parameters<AttackEntry["cost"]>[0], numClasses);
}
