/**
 * What a worker's numbers must satisfy before the frontend stores them. A worker holding a lease
 * token is not trusted: these checks refuse results no honest run of the unit could produce
 * (an adversarial image outside the attack's ball, a posterior that is not a distribution, a
 * verdict that is not its own argmax). They cannot prove a consistent forgery wrong — only a
 * recomputation can — but they keep nonsense out of reports and the shared adversarial sets.
 */
import { lpDistance, type Norm } from "./attacks/projections.ts";

/** float32 rounding of images in [0, 1]: what the projections' arithmetic may overshoot by. */
const SLACK = 1e-5;

/** Why `adv` is not an image the attack (norm, ε) could have made from `clean`, or null. */
export function adversarialProblem(
  clean: Float32Array,
  adv: Float32Array,
  norm: Norm,
  eps: number,
  range: readonly [number, number] = [0, 1],
): string | null {
  if (adv.length !== clean.length) return `${adv.length} values, the image has ${clean.length}`;
  for (let i = 0; i < adv.length; i++) {
    const v = adv[i];
    if (!Number.isFinite(v)) return `value ${i} is not a finite number`;
    if (v < range[0] - SLACK || v > range[1] + SLACK) {
      return `value ${i} (${v}) is outside [${range[0]}, ${range[1]}]`;
    }
  }
  const d = lpDistance(norm, adv, clean);
  if (d > eps * (1 + SLACK) + SLACK) {
    return `${norm} distance ${d} from the clean image exceeds ε = ${eps}`;
  }
  return null;
}

export interface VerdictNumbers {
  label: number;
  posterior: readonly number[];
  errorSum: readonly number[];
  errorSumSq: readonly number[];
  count: readonly number[];
  meanError: readonly number[];
  survivors: readonly (readonly number[])[];
}

/** Why a classify result is not a verdict the classifier could have given, or null. */
export function verdictProblem(r: VerdictNumbers, dc: boolean): string | null {
  const p = r.posterior;
  if (p.some((v) => !(v >= 0 && v <= 1))) return "a posterior entry is outside [0, 1]";
  const total = p.reduce((a, v) => a + v, 0);
  if (Math.abs(total - 1) > 1e-3) return `the posterior sums to ${total}, not 1`;
  // A discriminative classifier's label is its softmax's argmax. A DC's is not always: the
  // sequential race decides on paired errors over the timesteps both classes were scored on,
  // while the posterior is taken from each class's own mean (bench load found this).
  if (!dc) {
    return p[r.label] < Math.max(...p) - 1e-9
      ? `label ${r.label} is not the posterior's argmax`
      : null;
  }
  if (r.survivors.length && !r.survivors.at(-1)!.includes(r.label)) {
    return `label ${r.label} is not among the last survivors`;
  }
  for (let c = 0; c < r.count.length; c++) {
    if (r.count[c] < 0 || r.errorSum[c] < 0 || r.errorSumSq[c] < 0) {
      return `class ${c} has a negative count or error sum`;
    }
    if (r.count[c] > 0) {
      const mean = r.errorSum[c] / r.count[c];
      if (Math.abs(mean - r.meanError[c]) > 1e-6 * Math.max(1, Math.abs(mean))) {
        return `class ${c}'s mean error ${r.meanError[c]} is not its sum / count (${mean})`;
      }
    }
  }
  if (r.count[r.label] === 0) return `label ${r.label} was never scored`;
  return null;
}
