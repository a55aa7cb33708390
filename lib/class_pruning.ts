/**
 * Sequential class pruning with a paired test (after Clark & Jaini's paired-noise elimination):
 * timesteps of the classifier's grid are scored in a fixed seeded order, a few at a time, for the
 * classes still in the race; after each round a class leaves when its error exceeds the leader's
 * significantly — a one-sided paired z test on the per-timestep differences, paired because every
 * class sees the same (t, ε) draws. The race ends when one class is left ("decided") or the
 * timestep budget is spent ("budget": the leader wins). Deterministic given the settings.
 */
import { uniform } from "./rng.ts";

export interface SequentialPolicy {
  /** a class leaves when mean(d) > z · se(d), d = its error − the leader's per timestep */
  z: number;
  /** timesteps scored per round for every class in the race */
  batch: number;
  /** no class leaves before this many timesteps */
  minTimesteps: number;
  /** the race stops here at the latest (≤ gridSize) */
  maxTimesteps: number;
  /** seed of the order in which grid timesteps are scored */
  orderSeed: number;
}

const ORDER_STREAM = 0x0de5;

/** The order grid indices are scored in: a seeded permutation of 0 … G−1. */
export function timestepOrder(gridSize: number, seed: number): number[] {
  const u = uniform(seed, ORDER_STREAM, gridSize);
  return Array.from({ length: gridSize }, (_, j) => j).sort((a, b) => u[a] - u[b] || a - b);
}

/** One image's race. Feed it a round's errors with `record`, then call `decide`. */
export class ClassRace {
  readonly alive: number[];
  /** errors per class, one per scored timestep, in scoring order */
  readonly errors: number[][];
  /** timesteps scored when each class left (null: still in the race) */
  readonly exitAt: (number | null)[];
  /** classes alive after each round */
  readonly rounds: number[][] = [];
  scored = 0;
  stop: "decided" | "budget" | null = null;

  constructor(
    readonly numClasses: number,
    readonly policy: SequentialPolicy,
    readonly order: readonly number[],
  ) {
    this.alive = Array.from({ length: numClasses }, (_, c) => c);
    this.errors = Array.from({ length: numClasses }, () => []);
    this.exitAt = Array(numClasses).fill(null);
  }

  /** Grid indices to score next for every alive class, or null when the race is over. */
  next(): number[] | null {
    if (this.stop) return null;
    const end = Math.min(
      this.scored + this.policy.batch,
      this.policy.maxTimesteps,
      this.order.length,
    );
    return this.order.slice(this.scored, end);
  }

  record(c: number, error: number): void {
    this.errors[c].push(error);
  }

  mean(c: number): number {
    const e = this.errors[c];
    let s = 0;
    for (const v of e) s += v;
    return s / e.length;
  }

  /** The alive class with the lowest mean error (ties: the lower class). */
  leader(): number {
    let best = this.alive[0];
    for (const c of this.alive) if (this.mean(c) < this.mean(best)) best = c;
    return best;
  }

  /** Close a round of `count` timesteps: apply the paired test, maybe stop. */
  decide(count: number): void {
    this.scored += count;
    const p = this.policy;
    if (this.scored >= p.minTimesteps && this.alive.length > 1) {
      const lead = this.leader();
      const m = this.scored;
      const out = this.alive.filter((c) => {
        if (c === lead) return false;
        let sum = 0;
        for (let k = 0; k < m; k++) sum += this.errors[c][k] - this.errors[lead][k];
        const mean = sum / m;
        let ss = 0;
        for (let k = 0; k < m; k++) ss += (this.errors[c][k] - this.errors[lead][k] - mean) ** 2;
        const se = Math.sqrt(ss / Math.max(m - 1, 1) / m);
        return mean > p.z * se;
      });
      for (const c of out) this.exitAt[c] = m;
      const gone = new Set(out);
      const keep = this.alive.filter((c) => !gone.has(c));
      this.alive.splice(0, this.alive.length, ...keep);
    }
    this.rounds.push(this.alive.slice());
    if (this.alive.length === 1) this.stop = "decided";
    else if (this.scored >= Math.min(p.maxTimesteps, this.order.length)) this.stop = "budget";
  }
}
