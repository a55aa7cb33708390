/**
 * Progress of a long command on stderr: `[evaluate] attack 1200/4096 gradient evaluations ·
 * 41 s elapsed · ETA 68 s`. At most one line per interval (10 s) while a phase runs, and one
 * final line when it ends, so a log of a many-hour run stays readable. lib/ never prints: it
 * reports through callbacks (classifyImages' onProgress, runFinetune's hooks) or is observed
 * from outside (lib/attacks/oracle.ts `countingOracle`).
 */

export interface ProgressOptions {
  /** least time between two lines of a running phase (default 10 s) */
  intervalMs?: number;
  write?: (line: string) => void;
  now?: () => number;
}

interface Phase {
  name: string;
  unit: string;
  t0: number;
  /** work already done when the phase started (a resumed run): not part of the rate */
  from: number;
  done: number;
  total: number;
  note?: string;
  ended: boolean;
}

export function formatSeconds(s: number): string {
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

export class Progress {
  readonly #interval: number;
  readonly #write: (line: string) => void;
  readonly #now: () => number;
  #last: number;
  #phase?: Phase;

  constructor(readonly label: string, opts: ProgressOptions = {}) {
    this.#interval = opts.intervalMs ?? 10_000;
    this.#write = opts.write ?? ((l) => console.error(l));
    this.#now = opts.now ?? (() => performance.now());
    this.#last = this.#now();
  }

  /** Begin a phase (ending the one before) of `total` units, `from` of them already done. */
  start(name: string, total: number, unit: string, from = 0): void {
    this.end();
    this.#phase = { name, unit, t0: this.#now(), from, done: from, total, ended: false };
  }

  /** Set the count (and optionally the total and a short note such as the loss). */
  update(done: number, total?: number, note?: string): void {
    const p = this.#phase;
    if (!p || p.ended) return;
    p.done = done;
    if (total !== undefined) p.total = total;
    if (note !== undefined) p.note = note;
    if (p.done >= p.total) return this.end();
    if (this.#now() - this.#last >= this.#interval) this.#print(p);
  }

  add(k: number): void {
    if (this.#phase) this.update(this.#phase.done + k);
  }

  /**
   * A `(done, total)` callback for lib's onProgress hooks that starts phase `name` on its first
   * call (classifyImages reports its total only then).
   */
  callback(name: string, unit: string): (done: number, total: number) => void {
    let started = false;
    return (done, total) => {
      if (!started) {
        started = true;
        this.start(name, total, unit);
      }
      this.update(done, total);
    };
  }

  /** Print the running phase's final line (once). */
  end(): void {
    const p = this.#phase;
    if (!p || p.ended) return;
    p.ended = true;
    this.#print(p);
  }

  /** A one-off line between phases (a checkpoint written, a cell done). */
  log(message: string): void {
    this.#write(`[${this.label}] ${message}`);
  }

  #print(p: Phase): void {
    this.#last = this.#now();
    const s = (this.#now() - p.t0) / 1000;
    const shown = Math.min(p.done, p.total);
    const rate = (p.done - p.from) / s;
    const tail = p.ended
      ? `${formatSeconds(s)} · done`
      : `${formatSeconds(s)} elapsed · ETA ${
        rate > 0 ? formatSeconds((p.total - p.done) / rate) : "?"
      }`;
    const note = p.note ? ` · ${p.note}` : "";
    this.#write(`[${this.label}] ${p.name}: ${shown}/${p.total} ${p.unit}${note} · ${tail}`);
  }
}
