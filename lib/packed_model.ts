/**
 * Rows of several concurrent callers in one model call: a worker that runs several units at once
 * (several jobs' images) wraps its diffusion model in this, so their UNet rows share ONNX Runtime
 * calls instead of taking turns with small batches. Per-row results are independent of the rows
 * beside them, so each caller gets exactly what an unpacked call would give it
 * (tests/packed_model_test.ts).
 *
 * Dynamic batching without a timer on the lone-caller path: one call to the base model is in
 * flight at a time; requests that arrive meanwhile queue. A queue is sent when every unit the
 * `gate` counts as running is waiting in it — at once with one unit, so a single verdict pays no
 * extra latency — or, when some unit is still busy in its own code, after one macrotask turn
 * (which lets a unit whose previous call has just answered queue its next one first).
 *
 * Packed: `epsLoss` and `epsLossVjpX` (row-wise). `epsLossGradLora` sums over rows: it passes
 * through.
 */
import type { DiffusionModel, EpsLosses, EpsRows, LoraTensors } from "./model.ts";
import { imageSize, noiseSize } from "./model.ts";

/** How many units are running on the models that share this gate (the worker's slot counts). */
export interface PackingGate {
  active: number;
}

interface Request {
  rows: EpsRows;
  lora?: LoraTensors;
  /** present for a vjp request */
  w?: { l2: Float32Array; l1: Float32Array };
  resolve: (v: EpsLosses & { gradX?: Float32Array }) => void;
  reject: (e: unknown) => void;
}

export interface PackingStats {
  /** calls made to the base model */
  calls: number;
  /** requests answered */
  requests: number;
  rows: number;
}

export class PackedDiffusionModel<M extends DiffusionModel = DiffusionModel>
  implements DiffusionModel {
  readonly stats: PackingStats = { calls: 0, requests: 0, rows: 0 };
  #queue: Request[] = [];
  #busy = false;
  #timer?: ReturnType<typeof setTimeout>;

  constructor(
    readonly base: M,
    readonly gate: PackingGate = { active: 1 },
    /** at most this many rows are packed into one call (one request may bring more) */
    readonly maxRows = 1024,
  ) {}

  get id() {
    return this.base.id;
  }
  get imageShape() {
    return this.base.imageShape;
  }
  get noiseShape() {
    return this.base.noiseShape;
  }
  get poolsImageGradients() {
    return this.base.poolsImageGradients;
  }
  get classNames() {
    return this.base.classNames;
  }
  get nullClass() {
    return this.base.nullClass;
  }
  get numTimesteps() {
    return this.base.numTimesteps;
  }
  get loraLayout() {
    return this.base.loraLayout;
  }
  get schedule() {
    return this.base.schedule;
  }
  /** purification rows pass through (one sequential chain per unit: nothing to pack with) */
  get epsPred() {
    return this.base.epsPred?.bind(this.base);
  }
  get epsPredVjpX() {
    return this.base.epsPredVjpX?.bind(this.base);
  }

  epsLoss(rows: EpsRows, lora?: LoraTensors): Promise<EpsLosses> {
    return new Promise((resolve, reject) => this.#enqueue({ rows, lora, resolve, reject }));
  }

  epsLossVjpX(rows: EpsRows, wL2: Float32Array, wL1: Float32Array, lora?: LoraTensors) {
    return new Promise<EpsLosses & { gradX: Float32Array }>((resolve, reject) =>
      this.#enqueue({
        rows,
        lora,
        w: { l2: wL2, l1: wL1 },
        resolve: resolve as Request["resolve"],
        reject,
      })
    );
  }

  epsLossGradLora(rows: EpsRows, w: Float32Array, lora: LoraTensors) {
    return this.base.epsLossGradLora(rows, w, lora);
  }

  #enqueue(r: Request): void {
    this.#queue.push(r);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#busy || this.#queue.length === 0) return;
    if (this.#queue.length >= this.gate.active) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#flush();
    } else {
      this.#timer ??= setTimeout(() => {
        this.#timer = undefined;
        if (!this.#busy) this.#flush();
      }, 0);
    }
  }

  /** Send the head of the queue and the requests that pack with it; then look again. */
  async #flush(): Promise<void> {
    const head = this.#queue[0];
    const vjp = head.w !== undefined;
    const batch: Request[] = [];
    let rows = 0;
    this.#queue = this.#queue.filter((r) => {
      const fits = (r.w !== undefined) === vjp && r.lora === head.lora &&
        (batch.length === 0 || rows + r.rows.t.length <= this.maxRows);
      if (!fits) return true;
      batch.push(r);
      rows += r.rows.t.length;
      return false;
    });
    this.#busy = true;
    try {
      const packed = concatRows(
        batch.map((r) => r.rows),
        imageSize(this.base.imageShape),
        noiseSize(this.base),
      );
      const out: EpsLosses & { gradX?: Float32Array } = vjp
        ? await this.base.epsLossVjpX(
          packed,
          concat(batch.map((r) => r.w!.l2)),
          concat(batch.map((r) => r.w!.l1)),
          head.lora,
        )
        : await this.base.epsLoss(packed, head.lora);
      this.stats.calls++;
      this.stats.requests += batch.length;
      this.stats.rows += rows;
      const D = imageSize(this.base.imageShape);
      let at = 0;
      for (const r of batch) {
        const n = r.rows.t.length;
        const part: EpsLosses & { gradX?: Float32Array } = {
          l2: out.l2.slice(at, at + n),
          l1: out.l1.slice(at, at + n),
        };
        if (out.gradX) part.gradX = out.gradX.slice(at * D, (at + n) * D);
        r.resolve(part);
        at += n;
      }
    } catch (e) {
      for (const r of batch) r.reject(e);
    } finally {
      this.#busy = false;
      this.#schedule();
    }
  }
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** D: one row's image size; E: one row's noise size (the latent's, for a latent model). */
function concatRows(parts: EpsRows[], D: number, E: number): EpsRows {
  if (parts.length === 1) return parts[0];
  const n = parts.reduce((a, p) => a + p.t.length, 0);
  const out: EpsRows = {
    x: new Float32Array(n * D),
    eps: new Float32Array(n * E),
    t: new Int32Array(n),
    cls: new Int32Array(n),
  };
  // image indices stay apart across callers (a latent model pools rows by them): each caller's
  // are shifted past the previous caller's, and a caller without them gets one index per row
  const image = parts.some((p) => p.image) ? new Int32Array(n) : undefined;
  let at = 0;
  let next = 0;
  for (const p of parts) {
    out.x.set(p.x, at * D);
    out.eps.set(p.eps, at * E);
    out.t.set(p.t, at);
    out.cls.set(p.cls, at);
    if (image) {
      const m = p.t.length;
      let top = -1;
      for (let r = 0; r < m; r++) {
        const id = p.image ? p.image[r] : r;
        image[at + r] = next + id;
        if (id > top) top = id;
      }
      next += top + 1;
    }
    at += p.t.length;
  }
  if (image) out.image = image;
  return out;
}
