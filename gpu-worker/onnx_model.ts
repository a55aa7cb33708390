/**
 * The one place that knows onnxruntime (STYLE.md: one backend module). Loads a bundle,
 * verifies its manifest and file hashes, checks every call's inputs against the
 * manifest, chooses the execution provider (CUDA probed, CPU fallback: onnxruntime does
 * not fall back by itself), and implements lib/'s DiffusionModel and Classifier.
 */
import * as ort from "onnxruntime-node";
import { dirname, join } from "node:path";
import { createRequire } from "node:module";
import { BundleError, type DiffusionManifest, type GraphSpec } from "../lib/bundle_manifest.ts";
import {
  bundleShape,
  type ClassifierBundle,
  type DiffusionBundle,
  type LoadedBundle,
} from "../lib/bundle.ts";
import {
  type Classifier,
  type DiffusionModel,
  type EpsLosses,
  type EpsRows,
  type ImageShape,
  imageSize,
  type LoraTensors,
  type NoisyRows,
} from "../lib/model.ts";

export type Provider = "cuda" | "cpu";

export interface RuntimeOptions {
  /** intra-op threads per session (0 = onnxruntime's default) */
  threads?: number;
  /** preferred providers in order; CUDA is probed and skipped when unavailable */
  providers?: Provider[];
  /**
   * most rows per call of a dynamic-batch graph (default 1024): an adaptive attack on 100
   * images is 4,000 UNet rows, whose activations and gradients would otherwise take ~15 GB
   */
  maxRows?: number;
}

let cudaAvailable: boolean | undefined;

/**
 * Whether onnxruntime-node was installed with its CUDA provider (ONNXRUNTIME_NODE_INSTALL=cuda12
 * puts libonnxruntime_providers_*.so beside the binding). Without it a CUDA session would only
 * fail after onnxruntime logs a red "Failed to load library" error, on every machine here.
 */
function cudaProviderInstalled(): boolean {
  try {
    const entry = createRequire(import.meta.url).resolve("onnxruntime-node");
    const bin = join(
      dirname(entry),
      "..",
      "bin",
      "napi-v6",
      Deno.build.os,
      Deno.build.arch === "x86_64" ? "x64" : "arm64",
    );
    return [...Deno.readDirSync(bin)].some((e) => e.name.includes("providers_cuda"));
  } catch {
    return true; // an unexpected layout: let onnxruntime try, and say why it failed
  }
}

/** A session for one graph: input checks by name, fixed-batch padding, provider fallback. */
class GraphSession {
  #session?: Promise<ort.InferenceSession>;
  provider: Provider = "cpu";

  constructor(
    readonly bundle: LoadedBundle,
    readonly name: string,
    readonly spec: GraphSpec,
    readonly options: RuntimeOptions,
  ) {}

  get fixedBatch(): number | undefined {
    return this.spec.batch.kind === "fixed" ? this.spec.batch.size : undefined;
  }

  #open(): Promise<ort.InferenceSession> {
    this.#session ??= (async () => {
      const path = join(this.bundle.dir, this.spec.file);
      const base: ort.InferenceSession.SessionOptions = {
        graphOptimizationLevel: "all",
        intraOpNumThreads: this.options.threads ?? 0,
        interOpNumThreads: 1,
      };
      const wantCuda = (this.options.providers ?? ["cpu"]).includes("cuda");
      if (wantCuda && cudaAvailable === undefined && !cudaProviderInstalled()) {
        cudaAvailable = false;
        console.warn("[onnx] the CUDA execution provider is not installed; using CPU");
      }
      if (wantCuda && cudaAvailable !== false) {
        try {
          const s = await ort.InferenceSession.create(path, {
            ...base,
            executionProviders: ["cuda"],
          });
          cudaAvailable = true;
          this.provider = "cuda";
          return this.#checked(s);
        } catch (e) {
          cudaAvailable = false;
          console.warn(
            `[onnx] CUDA unavailable for ${this.name} (${
              (e as Error).message.split("\n")[0]
            }); using CPU`,
          );
        }
      }
      const s = await ort.InferenceSession.create(path, { ...base, executionProviders: ["cpu"] });
      this.provider = "cpu";
      return this.#checked(s);
    })();
    return this.#session;
  }

  #checked(s: ort.InferenceSession): ort.InferenceSession {
    const want = this.spec.inputs.map((i) => i.name);
    const missing = want.filter((n) => !s.inputNames.includes(n));
    if (missing.length || s.inputNames.length !== want.length) {
      throw new BundleError(
        `${this.bundle.id}/${this.name}: graph inputs [${
          s.inputNames.join(", ")
        }] do not match the manifest [${want.join(", ")}]`,
      );
    }
    return s;
  }

  /**
   * Run on `rows` rows. `feeds` maps input name → [typed array, per-row shape or full
   * shape for row-independent inputs such as LoRA tensors].
   */
  async run(
    rows: number,
    perRow: Record<string, { data: Float32Array | Int32Array; rowShape: number[] }>,
    shared: Record<string, Float32Array>,
  ): Promise<Record<string, Float32Array>> {
    const s = await this.#open();
    const chunk = this.fixedBatch ?? Math.max(1, Math.min(rows, this.options.maxRows ?? 1024));
    const outs: Record<string, Float32Array[]> = {};
    for (let start = 0; start < rows; start += chunk) {
      const n = Math.min(chunk, rows - start);
      const b = this.fixedBatch ?? n; // pad to the fixed size with zero rows (weight 0)
      const feeds: Record<string, ort.Tensor> = {};
      for (const spec of this.spec.inputs) {
        const row = perRow[spec.name];
        if (row) {
          const per = row.rowShape.reduce((a, c) => a * c, 1);
          const slice = row.data.subarray(start * per, (start + n) * per);
          if (row.data instanceof Int32Array) {
            const big = new BigInt64Array(b * per);
            for (let k = 0; k < slice.length; k++) big[k] = BigInt(slice[k]);
            feeds[spec.name] = new ort.Tensor("int64", big, [b, ...row.rowShape]);
          } else {
            const buf = b === n ? slice.slice() : new Float32Array(b * per);
            if (b !== n) buf.set(slice);
            feeds[spec.name] = new ort.Tensor("float32", buf, [b, ...row.rowShape]);
          }
        } else if (shared[spec.name]) {
          const shape = spec.shape as number[];
          const size = shape.reduce((a, c) => a * c, 1);
          if (shared[spec.name].length !== size) {
            throw new RangeError(
              `${this.name}: input ${spec.name} needs ${size} values, got ${
                shared[spec.name].length
              }`,
            );
          }
          feeds[spec.name] = new ort.Tensor("float32", shared[spec.name], shape);
        } else {
          throw new RangeError(`${this.bundle.id}/${this.name}: no value for input '${spec.name}'`);
        }
      }
      const result = await s.run(feeds);
      for (const o of this.spec.outputs) {
        const data = result[o.name].data as Float32Array;
        // Per-row outputs drop the padding rows; per-tensor gradients are kept whole.
        (outs[o.name] ??= []).push(
          isPerTensor(o.name) ? data : data.subarray(0, n * (data.length / b)),
        );
      }
    }
    const merged: Record<string, Float32Array> = {};
    for (const [k, parts] of Object.entries(outs)) {
      merged[k] = isPerTensor(k) ? sumParts(parts) : concat(parts); // gradient chunks add up
    }
    return merged;
  }
}

/** LoRA gradients are one tensor per graph call, not one value per row. */
function isPerTensor(output: string): boolean {
  return output.startsWith("grad.lora.");
}

function concat(parts: Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function sumParts(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts[0]);
  for (const p of parts.slice(1)) for (let i = 0; i < out.length; i++) out[i] += p[i];
  return out;
}

type Feeds = Record<string, { data: Float32Array | Int32Array; rowShape: number[] }>;

/** Same length and bits (an image seen again: its latent is reused, its gradient pooled). */
function sameRow(a: Float32Array, i: number, j: number, d: number): boolean {
  if (i === j) return true;
  for (let p = 0; p < d; p++) if (a[i * d + p] !== a[j * d + p]) return false;
  return true;
}

/**
 * A latent model's `encode` graph with a small cache: the DC scores one image on hundreds of
 * (t, ε, class) rows, and encoding it once per distinct image (not per row) is what makes a
 * 512 px VAE affordable. Keyed by the image's bits, checked on hit.
 */
class LatentEncoder {
  readonly #cache = new Map<string, { x: Float32Array; z: Float32Array }>();
  constructor(
    readonly graph: GraphSession,
    readonly vjpGraph: GraphSession,
    readonly shape: ImageShape,
    readonly latentShape: ImageShape,
    readonly D = imageSize(shape),
    readonly E = imageSize(latentShape),
    /** at most ~256 MiB of cached images and latents (a 512 px input is 3 MB) */
    readonly maxCached = Math.max(8, Math.min(256, Math.floor(2 ** 28 / ((D + E) * 4)))),
  ) {}

  #key(x: Float32Array): string {
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    let h = 0x811c9dc5;
    for (let i = 0; i < u.length; i++) h = Math.imul(h ^ u[i], 0x01000193);
    return `${u.length}:${h >>> 0}`;
  }

  /** Latents of `n` rows of images: each distinct image (by its bits) encodes once, cached. */
  async encodeRows(x: Float32Array, n: number): Promise<Float32Array> {
    const { D, E } = this;
    const z = new Float32Array(n * E);
    const keyOf: string[] = new Array(n);
    const found = new Map<string, Float32Array>();
    const missing = new Map<string, number>(); // key → first row with that image
    for (let r = 0; r < n; r++) {
      if (r > 0 && sameRow(x, r, r - 1, D)) {
        keyOf[r] = keyOf[r - 1];
        continue;
      }
      const img = x.subarray(r * D, (r + 1) * D);
      const key = this.#key(img);
      const hit = this.#cache.get(key);
      // a hash collision with different bits: encode this one, cache neither twice
      const k = hit && !hit.x.every((v, p) => v === img[p]) ? `${key}@${r}` : key;
      keyOf[r] = k;
      if (hit && k === key) found.set(k, hit.z);
      else if (!missing.has(k)) missing.set(k, r);
    }
    if (missing.size) {
      const rowsToEncode = [...missing.values()];
      const xs = new Float32Array(rowsToEncode.length * D);
      rowsToEncode.forEach((r, k) => xs.set(x.subarray(r * D, (r + 1) * D), k * D));
      const { channels: c, height: h, width: w } = this.shape;
      const out = (await this.graph.run(rowsToEncode.length, {
        x: { data: xs, rowShape: [c, h, w] },
      }, {})).z;
      [...missing.keys()].forEach((key, k) => {
        const zr = out.slice(k * E, (k + 1) * E);
        found.set(key, zr);
        if (key.includes("@")) return;
        while (this.#cache.size >= this.maxCached) {
          this.#cache.delete(this.#cache.keys().next().value!);
        }
        this.#cache.set(key, { x: xs.slice(k * D, (k + 1) * D), z: zr });
      });
    }
    for (let r = 0; r < n; r++) z.set(found.get(keyOf[r])!, r * E);
    return z;
  }

  /**
   * d(Σ_r g_r·z_r)/dx, pooled: for each run of consecutive rows with the same `image` index
   * (and so the same pixels), one pass back through the encoder with the run's summed latent
   * gradient, its result on the run's first row (zeros on the others) — what
   * DiffusionModel.epsLossVjpX allows. Without `image`, every row is its own run: two of the
   * caller's images may have identical pixels, and each must get its own gradient.
   */
  async backward(
    x: Float32Array,
    gz: Float32Array,
    n: number,
    image?: Int32Array,
  ): Promise<Float32Array> {
    const { D, E } = this;
    const starts: number[] = [];
    for (let r = 0; r < n; r++) {
      if (r === 0 || !image || image[r] !== image[r - 1] || !sameRow(x, r, r - 1, D)) {
        starts.push(r);
      }
    }
    const xs = new Float32Array(starts.length * D);
    const ws = new Float32Array(starts.length * E);
    starts.forEach((s, k) => {
      xs.set(x.subarray(s * D, (s + 1) * D), k * D);
      const end = k + 1 < starts.length ? starts[k + 1] : n;
      for (let r = s; r < end; r++) {
        for (let p = 0; p < E; p++) ws[k * E + p] += gz[r * E + p];
      }
    });
    const { channels: c, height: h, width: w } = this.shape;
    const { channels: lc, height: lh, width: lw } = this.latentShape;
    const o = await this.vjpGraph.run(starts.length, {
      x: { data: xs, rowShape: [c, h, w] },
      w: { data: ws, rowShape: [lc, lh, lw] },
    }, {});
    const gx = new Float32Array(n * D);
    starts.forEach((s, k) => gx.set(o.grad_x.subarray(k * D, (k + 1) * D), s * D));
    return gx;
  }
}

export class OnnxDiffusionModel implements DiffusionModel {
  readonly id: string;
  readonly imageShape: ImageShape;
  readonly noiseShape: ImageShape;
  readonly poolsImageGradients: boolean;
  /** a latent bundle's encoder (absent for pixel bundles) */
  readonly #encoder?: LatentEncoder;
  readonly classNames: readonly string[];
  readonly nullClass: number;
  readonly numTimesteps: number;
  readonly loraLayout: readonly { name: string; shape: number[] }[];
  readonly schedule: DiffusionManifest["schedule"];
  readonly #graphs: Record<"eps_loss" | "eps_loss_vjp_x" | "eps_loss_grad_lora", GraphSession>;
  /** purification graphs, when the bundle has them (tmdc_compiler.add_purifier_graphs) */
  readonly #purifier?: { pred: GraphSession; vjp: GraphSession };
  readonly #zeroLora: Float32Array[];

  constructor(
    readonly bundle: DiffusionBundle,
    options: RuntimeOptions = {},
  ) {
    const m = bundle.manifest;
    this.id = bundle.id;
    this.imageShape = bundleShape(m);
    this.noiseShape = this.imageShape;
    if (m.kind === "latent-diffusion") {
      const { channels, height, width } = m.latent;
      this.noiseShape = { channels, height, width };
      // the VAE at 512 px needs ~0.5 GB of activations per image: encode a few at a time
      const few = m.graphs.encode_vjp_x.batch.kind === "fixed"
        ? m.graphs.encode_vjp_x.batch.size
        : 8;
      this.#encoder = new LatentEncoder(
        new GraphSession(bundle, "encode", m.graphs.encode, { ...options, maxRows: few }),
        new GraphSession(bundle, "encode_vjp_x", m.graphs.encode_vjp_x, options),
        this.imageShape,
        this.noiseShape,
      );
    }
    this.poolsImageGradients = this.#encoder !== undefined;
    this.classNames = m.classes;
    this.nullClass = m.null_class;
    this.numTimesteps = m.schedule.num_timesteps;
    this.schedule = m.schedule;
    this.loraLayout = m.lora.tensors;
    if (m.kind === "diffusion" && m.graphs.eps_pred && m.graphs.eps_pred_vjp_x) {
      this.#purifier = {
        pred: new GraphSession(bundle, "eps_pred", m.graphs.eps_pred, options),
        vjp: new GraphSession(bundle, "eps_pred_vjp_x", m.graphs.eps_pred_vjp_x, options),
      };
    } else {
      // no graphs: the methods are absent, so a purifier target says what the bundle lacks
      this.epsPred = undefined;
      this.epsPredVjpX = undefined;
    }
    this.#zeroLora = m.lora.tensors.map((t) =>
      new Float32Array(t.shape.reduce((a, c) => a * c, 1))
    );
    this.#graphs = {
      eps_loss: new GraphSession(bundle, "eps_loss", m.graphs.eps_loss, options),
      eps_loss_vjp_x: new GraphSession(bundle, "eps_loss_vjp_x", m.graphs.eps_loss_vjp_x, options),
      eps_loss_grad_lora: new GraphSession(
        bundle,
        "eps_loss_grad_lora",
        m.graphs.eps_loss_grad_lora,
        options,
      ),
    };
  }

  get provider(): Provider {
    return this.#graphs.eps_loss.provider;
  }

  #lora(lora?: LoraTensors): Record<string, Float32Array> {
    const tensors = lora ?? this.#zeroLora;
    if (tensors.length !== this.loraLayout.length) {
      throw new RangeError(
        `expected ${this.loraLayout.length} LoRA tensors, got ${tensors.length}`,
      );
    }
    return Object.fromEntries(this.loraLayout.map((l, i) => [l.name, tensors[i]]));
  }

  /** Graph feeds for `rows`: the image itself, or (latent bundles) its encoded latent. */
  async #rows(rows: EpsRows) {
    const D = imageSize(this.imageShape);
    const E = imageSize(this.noiseShape);
    const n = rows.t.length;
    if (rows.x.length !== n * D || rows.eps.length !== n * E || rows.cls.length !== n) {
      throw new RangeError("EpsRows arrays disagree on the number of rows");
    }
    this.#checkTimestepsAndClasses(rows.t, rows.cls);
    const { channels: c, height: h, width: w } = this.noiseShape;
    const input: Feeds = this.#encoder
      ? { z: { data: n ? await this.#encoder.encodeRows(rows.x, n) : rows.x, rowShape: [c, h, w] } }
      : { x: { data: rows.x, rowShape: [c, h, w] } };
    return {
      n,
      feeds: <Feeds> {
        ...input,
        t: { data: rows.t, rowShape: [] },
        eps: { data: rows.eps, rowShape: [c, h, w] },
        class: { data: rows.cls, rowShape: [] },
      },
    };
  }

  /** Every row's timestep inside the schedule and class a real one or the null class. */
  #checkTimestepsAndClasses(t: Int32Array, cls: Int32Array): void {
    for (let i = 0; i < t.length; i++) {
      if (t[i] < 0 || t[i] >= this.numTimesteps) {
        throw new RangeError(`timestep ${t[i]} out of range`);
      }
      if (cls[i] < 0 || cls[i] > this.nullClass) {
        throw new RangeError(`class ${cls[i]} out of range`);
      }
    }
  }

  #noisy(rows: NoisyRows) {
    const { channels: c, height: h, width: w } = this.imageShape;
    const n = rows.t.length;
    if (rows.xt.length !== n * c * h * w || rows.cls.length !== n) {
      throw new RangeError("NoisyRows arrays disagree on the number of rows");
    }
    this.#checkTimestepsAndClasses(rows.t, rows.cls);
    return {
      n,
      feeds: {
        x_t: { data: rows.xt, rowShape: [c, h, w] },
        t: { data: rows.t, rowShape: [] },
        class: { data: rows.cls, rowShape: [] },
      },
    };
  }

  epsPred? = async (rows: NoisyRows): Promise<Float32Array> => {
    const { n, feeds } = this.#noisy(rows);
    if (n === 0) return new Float32Array();
    return (await this.#purifier!.pred.run(n, feeds, {})).eps;
  };

  epsPredVjpX? = async (rows: NoisyRows, w: Float32Array) => {
    const { n, feeds } = this.#noisy(rows);
    const { channels: c, height: h, width: wd } = this.imageShape;
    const o = await this.#purifier!.vjp.run(
      n,
      { ...feeds, w: { data: w, rowShape: [c, h, wd] } },
      {},
    );
    return { eps: o.eps, gradX: o.grad_x };
  };

  async epsLoss(rows: EpsRows, lora?: LoraTensors): Promise<EpsLosses> {
    const { n, feeds } = await this.#rows(rows);
    if (n === 0) return { l2: new Float32Array(), l1: new Float32Array() };
    const o = await this.#graphs.eps_loss.run(n, feeds, this.#lora(lora));
    return { l2: o.loss_l2, l1: o.loss_l1 };
  }

  async epsLossVjpX(rows: EpsRows, wL2: Float32Array, wL1: Float32Array, lora?: LoraTensors) {
    const { n, feeds } = await this.#rows(rows);
    const o = await this.#graphs.eps_loss_vjp_x.run(n, {
      ...feeds,
      w_l2: { data: wL2, rowShape: [] },
      w_l1: { data: wL1, rowShape: [] },
    }, this.#lora(lora));
    // latent bundles: the chain rule back through the encoder to the image
    const gradX = this.#encoder
      ? await this.#encoder.backward(rows.x, o.grad_z, n, rows.image)
      : o.grad_x;
    return { l2: o.loss_l2, l1: o.loss_l1, gradX };
  }

  async epsLossGradLora(rows: EpsRows, w: Float32Array, lora: LoraTensors) {
    const { n, feeds } = await this.#rows(rows);
    const o = await this.#graphs.eps_loss_grad_lora.run(n, {
      ...feeds,
      w: { data: w, rowShape: [] },
    }, this.#lora(lora));
    return { l2: o.loss_l2, grads: this.loraLayout.map((l) => o[`grad.${l.name}`]) };
  }
}

export class OnnxClassifier implements Classifier {
  readonly id: string;
  readonly imageShape: ImageShape;
  readonly classNames: readonly string[];
  readonly #logits: GraphSession;
  readonly #vjp: GraphSession;

  get provider(): Provider {
    return this.#logits.provider;
  }

  constructor(
    readonly bundle: ClassifierBundle,
    options: RuntimeOptions = {},
  ) {
    this.id = bundle.id;
    this.imageShape = bundleShape(bundle.manifest);
    this.classNames = bundle.manifest.classes;
    this.#logits = new GraphSession(bundle, "logits", bundle.manifest.graphs.logits, options);
    this.#vjp = new GraphSession(
      bundle,
      "logits_vjp_x",
      bundle.manifest.graphs.logits_vjp_x,
      options,
    );
  }

  async logits(x: Float32Array, n: number): Promise<Float32Array> {
    const { channels: c, height: h, width: w } = this.imageShape;
    return (await this.#logits.run(n, { x: { data: x, rowShape: [c, h, w] } }, {})).logits;
  }

  async logitsVjpX(x: Float32Array, w: Float32Array, n: number) {
    const { channels: c, height: h, width: wd } = this.imageShape;
    const o = await this.#vjp.run(n, {
      x: { data: x, rowShape: [c, h, wd] },
      w: { data: w, rowShape: [this.classNames.length] },
    }, {});
    return { logits: o.logits, gradX: o.grad_x };
  }
}
