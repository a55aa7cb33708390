/**
 * Spec §7 sanity checks for an evaluation report. Many checks need a second run (another ε,
 * twice the iterations, the other attack mode), so they compare an evaluation with its
 * siblings: finished evaluations of the same target (bundle and adapter) on the same images.
 * A check with no sibling to compare against is listed as "not-run" with what to submit.
 */
import {
  budgetMonotone,
  type Check,
  doublingStable,
  freshNoiseNotOptimistic,
  singleStepNotStronger,
  transferNotStronger,
  unboundedBudget,
} from "./sanity.ts";

export interface EvalItemLike {
  index: number;
  label: number;
  cleanPred: number;
  advPred: number;
  dist?: number;
  /** verdicts under fresh noise draws (-1 = not scored: wrong on the clean image) */
  fresh?: number[];
}

export interface EvalRun {
  id: string;
  mode: "transfer" | "adaptive" | "white-box";
  attack: { attack: string; norm: string; eps: number; steps?: number; version?: string };
  items: EvalItemLike[];
}

export type ReportCheck = Check & { status: "passed" | "failed" | "not-run"; against?: string[] };

const robust = (it: EvalItemLike) => (it.cleanPred === it.label && it.advPred === it.label ? 1 : 0);
const accuracy = (r: EvalRun) => r.items.reduce((a, it) => a + robust(it), 0) / r.items.length;
const sameAttack = (a: EvalRun, b: EvalRun) =>
  a.attack.attack === b.attack.attack && a.attack.version === b.attack.version &&
  a.attack.norm === b.attack.norm && a.mode === b.mode;

/** Per-example robust flags of two runs over the indices both have. */
function paired(a: EvalRun, b: EvalRun): [Uint8Array, Uint8Array] {
  const byIndex = new Map(b.items.map((it) => [it.index, it]));
  const x: number[] = [];
  const y: number[] = [];
  for (const it of a.items) {
    const o = byIndex.get(it.index);
    if (!o) continue;
    x.push(robust(it));
    y.push(robust(o));
  }
  return [Uint8Array.from(x), Uint8Array.from(y)];
}

const done = (c: Check, against: string[] = []): ReportCheck => ({
  ...c,
  status: c.ok ? "passed" : "failed",
  against,
});
const notRun = (name: string, detail: string): ReportCheck => ({
  name,
  ok: true,
  status: "not-run",
  detail,
});

/** Robust accuracy under each fresh noise draw (right on the clean image and under that draw). */
export function freshNoiseAccuracy(items: EvalItemLike[]): number[] {
  if (items.length === 0) return [];
  const R = Math.min(...items.map((it) => it.fresh?.length ?? 0));
  return Array.from({ length: R }, (_, r) =>
    items.reduce(
      (a, it) => a + (it.cleanPred === it.label && it.fresh![r] === it.label ? 1 : 0),
      0,
    ) / items.length);
}

/** What an unbounded budget may leave right on a stochastic target (draw luck), as a fraction. */
export const STOCHASTIC_UNBOUNDED_SLACK = 0.05;

export function evaluationChecks(
  self: EvalRun,
  siblings: EvalRun[],
  dims: number,
  /**
   * the target draws noise (a DC, DiffPure): its verdicts can be re-scored with fresh draws, and
   * an unbounded budget may leave a few images right by the luck of the draw (≤ 5% allowed)
   */
  stochasticTarget = false,
): ReportCheck[] {
  const out: ReportCheck[] = [];
  const a = self.attack;
  const unboundedEps = a.norm === "linf" ? 1 : Math.sqrt(dims);

  const dists = self.items.map((it) => it.dist).filter((d): d is number => d !== undefined);
  out.push(
    dists.length
      ? done({
        name: "perturbation within ε",
        ok: Math.max(...dists) <= a.eps * (1 + 1e-5) + 1e-6,
        detail: `max ${a.norm} distance ${Math.max(...dists).toPrecision(4)} (ε = ${a.eps})`,
      })
      : notRun("perturbation within ε", "no distances recorded"),
  );

  const sweep = [self, ...siblings.filter((s) => sameAttack(s, self) && s.attack.steps === a.steps)]
    .filter((r, i, all) => all.findIndex((o) => o.attack.eps === r.attack.eps) === i);
  out.push(
    sweep.length > 1
      ? done(
        budgetMonotone(sweep.map((r) => ({ eps: r.attack.eps, robust: accuracy(r) }))),
        sweep.filter((r) => r !== self).map((r) => r.id),
      )
      : notRun("accuracy non-increasing in ε", "submit the same attack at another ε"),
  );

  if (self.mode !== "transfer") {
    const ub = [self, ...siblings].find((r) => sameAttack(r, self) && r.attack.eps >= unboundedEps);
    out.push(
      ub
        ? done(
          unboundedBudget(
            accuracy(ub),
            stochasticTarget ? STOCHASTIC_UNBOUNDED_SLACK : 0,
            `${a.norm} ε = ${unboundedEps.toPrecision(3)}`,
          ),
          [ub.id],
        )
        : notRun(
          "an unbounded budget reaches 0%",
          `submit the same attack at ${a.norm} ε = ${unboundedEps.toPrecision(3)}`,
        ),
    );
  }

  const twin = siblings.find((r) =>
    sameAttack(r, self) && r.attack.eps === a.eps && a.steps !== undefined &&
    (r.attack.steps === 2 * a.steps || 2 * (r.attack.steps ?? 0) === a.steps)
  );
  if (twin) {
    const [base, dbl] = twin.attack.steps! > a.steps! ? paired(self, twin) : paired(twin, self);
    out.push(done(doublingStable(base, dbl), [twin.id]));
  } else {
    out.push(
      notRun(
        "doubling the attack budget changes nothing beyond noise",
        "submit the same attack with twice the steps",
      ),
    );
  }

  const other = siblings.filter((r) =>
    r.attack.norm === a.norm && r.attack.eps === a.eps &&
    (self.mode === "transfer" ? r.mode !== "transfer" : r.mode === "transfer")
  );
  if (other.length) {
    for (const o of other) {
      const [wb, tr] = self.mode === "transfer" ? paired(o, self) : paired(self, o);
      out.push(done(transferNotStronger(wb, tr), [o.id]));
    }
  } else {
    out.push(notRun(
      "white-box breaks everything transfer breaks",
      self.mode === "transfer"
        ? "submit an adaptive evaluation at the same ε"
        : "submit a transfer evaluation at the same ε",
    ));
  }

  if (stochasticTarget) {
    const perDraw = freshNoiseAccuracy(self.items);
    out.push(
      perDraw.length
        ? done(freshNoiseNotOptimistic(accuracy(self), perDraw, self.items.length))
        : notRun(
          "fixed-noise accuracy not above fresh noise draws",
          "submit the evaluation again with rescore ≥ 10",
        ),
    );
  }

  const single = ["fgsm", "fgm"];
  const pair = siblings.find((r) =>
    r.mode === self.mode && r.attack.norm === a.norm && r.attack.eps === a.eps &&
    ((single.includes(a.attack) && r.attack.attack === "pgd") ||
      (a.attack === "pgd" && single.includes(r.attack.attack)))
  );
  if (pair) {
    const [fg, it] = single.includes(a.attack) ? [self, pair] : [pair, self];
    // slack: one-step and iterative runs are separate samples of the same images' outcomes
    const slack = 1.96 * Math.sqrt(0.25 / self.items.length);
    out.push(done(singleStepNotStronger(accuracy(fg), accuracy(it), slack), [pair.id]));
  }
  return out;
}
