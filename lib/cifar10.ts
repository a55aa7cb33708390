/**
 * CIFAR-10 from local files (it cannot be downloaded here): the official binary layout
 * (`cifar-10-batches-bin/test_batch.bin`: records of 1 label byte + 3,072 pixel bytes, channel-
 * major RGB) and the Python layout (`cifar-10-batches-py/test_batch`: a pickled dict with
 * `data` — a uint8 numpy array n × 3,072 — and `labels`), read from `TMDC_CIFAR10_DIR`.
 * Images come out as float32 CHW in [0, 1], as the bundles take them.
 */
import { join } from "node:path";
import { BufferReader, NameRegistry, Parser } from "pickleparser";
import { DatasetError, type LabelledImages } from "./fashion_mnist.ts";

export const CIFAR10 = Object.freeze({
  classes: 10,
  shape: Object.freeze({ channels: 3, height: 32, width: 32 }),
  testSize: 10_000,
  names: Object.freeze([
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
  ]),
});
const D = 3 * 32 * 32;

export const CIFAR10_ENV = "TMDC_CIFAR10_DIR";

/** One binary batch: n records of [label, 3,072 pixels]. */
export function parseBinaryBatch(bytes: Uint8Array): LabelledImages {
  if (bytes.length === 0 || bytes.length % (D + 1) !== 0) {
    throw new DatasetError(
      `a CIFAR-10 binary batch is a whole number of ${
        D + 1
      }-byte records; this one has ${bytes.length} bytes`,
    );
  }
  const n = bytes.length / (D + 1);
  const images = new Float32Array(n * D);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const rec = i * (D + 1);
    labels[i] = bytes[rec];
    if (labels[i] > 9) throw new DatasetError(`record ${i} has label ${labels[i]} (CIFAR-10: 0–9)`);
    for (let p = 0; p < D; p++) images[i * D + p] = bytes[rec + 1 + p] / 255;
  }
  return { images, labels, n };
}

/**
 * pickleparser decodes a py2 `str` (how the official files store the array's bytes) with the
 * WHATWG "ascii" decoder, which is windows-1252 and not byte-faithful; this reader decodes it
 * as Latin-1 instead, so every char code is the byte itself.
 */
class Latin1Reader extends BufferReader {
  override string(size: number, encoding: "ascii" | "utf-8"): string {
    if (encoding === "utf-8") return super.string(size, encoding);
    const b = this.bytes(size);
    let s = "";
    for (let i = 0; i < b.length; i += 8192) {
      s += String.fromCharCode(...b.subarray(i, i + 8192));
    }
    return s;
  }
}

interface NdArray {
  shape?: number[];
  dtype?: string;
  data?: Uint8Array;
  __setstate__(state: unknown[]): void;
}

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (v instanceof Int8Array || v instanceof Uint8ClampedArray) {
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }
  if (typeof v === "string") return Uint8Array.from(v, (c) => c.charCodeAt(0)); // Latin-1
  throw new DatasetError("the pickled array's data is neither bytes nor a byte string");
}

/** The numpy classes and functions a pickled uint8 array names, as plain objects. */
function numpyNames(): NameRegistry {
  const dtype = (kind: string) => ({ kind, __setstate__() {} });
  const reconstruct = (): NdArray => ({
    __setstate__(state: unknown[]) {
      // (version, shape, dtype, is_fortran, raw bytes) — numpy's ndarray.__reduce__
      const [, shape, dt, fortran, raw] = state as [
        number,
        number[],
        { kind: string },
        boolean,
        unknown,
      ];
      if (fortran) throw new DatasetError("a Fortran-ordered array is not a CIFAR-10 batch");
      this.shape = shape;
      this.dtype = dt?.kind;
      this.data = toBytes(raw);
    },
  });
  const r = new NameRegistry();
  for (const mod of ["numpy.core.multiarray", "numpy._core.multiarray"]) {
    r.register(mod, "_reconstruct", reconstruct);
  }
  // protocol 5 (Python 3.14's default): _frombuffer(buffer, dtype, shape, order)
  const frombuffer = (buf: unknown, dt: { kind?: string }, shape: number[], order: string) => {
    if (order !== "C") throw new DatasetError("a Fortran-ordered array is not a CIFAR-10 batch");
    return { shape, dtype: dt?.kind, data: toBytes(buf), __setstate__() {} } as NdArray;
  };
  for (const mod of ["numpy.core.numeric", "numpy._core.numeric"]) {
    r.register(mod, "_frombuffer", frombuffer);
  }
  r.register("numpy", "ndarray", function ndarray() {});
  r.register("numpy", "dtype", dtype);
  r.register("_codecs", "encode", (s: string) => toBytes(s)); // py3 protocol 2: bytes as Latin-1 text
  return r;
}

/** One Python batch (`pickle.load(f, encoding="bytes")` → {b"data": uint8 n×3072, b"labels": [...]}). */
export function parsePythonBatch(bytes: Uint8Array): LabelledImages {
  if (bytes[0] !== 0x80) {
    // protocols 0 and 1 have no PROTO opcode; their text-mode strings are escaped, which the
    // parser does not undo: refused rather than misread (the official files are protocol 2)
    throw new DatasetError(
      "not a CIFAR-10 Python batch: a protocol 0/1 (text) pickle, or not a pickle; re-save it with protocol ≥ 2",
    );
  }
  let obj: Map<unknown, unknown>;
  try {
    obj = new Parser({ nameResolver: numpyNames(), unpicklingTypeOfDictionary: "Map" }).read(
      new Latin1Reader(bytes),
    );
  } catch (e) {
    throw new DatasetError(`not a CIFAR-10 Python batch: ${(e as Error).message}`);
  }
  const get = (k: string) => {
    if (!(obj instanceof Map)) return undefined;
    for (const [key, v] of obj) {
      const name = key instanceof Uint8Array ? new TextDecoder().decode(key) : String(key);
      if (name === k) return v;
    }
  };
  const data = get("data") as NdArray | undefined;
  const labels = get("labels") as number[] | undefined; // CIFAR-100's fine_labels: not CIFAR-10
  if (!data?.data || !data.shape || !Array.isArray(labels)) {
    throw new DatasetError("a CIFAR-10 Python batch needs 'data' (a uint8 array) and 'labels'");
  }
  const [n, d] = data.shape;
  if (d !== D || data.data.length !== n * D || labels.length !== n || data.dtype !== "u1") {
    throw new DatasetError(
      `CIFAR-10 Python batch: data ${
        data.shape.join("×")
      } (${data.dtype}), ${labels.length} labels`,
    );
  }
  const bad = labels.findIndex((l) => !Number.isInteger(l) || l < 0 || l > 9);
  if (bad >= 0) throw new DatasetError(`record ${bad} has label ${labels[bad]} (CIFAR-10: 0–9)`);
  const images = new Float32Array(n * D);
  for (let p = 0; p < n * D; p++) images[p] = data.data[p] / 255;
  return { images, labels: Int32Array.from(labels), n };
}

/** Where a batch can be, in order: binary first (the cheaper parse). */
function candidates(dir: string, name: string) {
  return [
    { path: join(dir, "cifar-10-batches-bin", `${name}.bin`), parse: parseBinaryBatch },
    { path: join(dir, `${name}.bin`), parse: parseBinaryBatch },
    { path: join(dir, "cifar-10-batches-py", name), parse: parsePythonBatch },
    { path: join(dir, name), parse: parsePythonBatch },
  ];
}

/** The folder named by TMDC_CIFAR10_DIR, or a DatasetError naming the variable. */
export function cifar10Dir(env: (k: string) => string | undefined = Deno.env.get): string {
  const dir = env(CIFAR10_ENV);
  if (!dir) {
    throw new DatasetError(
      `CIFAR-10 is not configured: set ${CIFAR10_ENV} to a folder with cifar-10-batches-bin/ or cifar-10-batches-py/ (it cannot be downloaded here)`,
    );
  }
  return dir;
}

/** The 10,000 test images, from whichever layout the folder has. */
export async function loadCifar10Test(dir = cifar10Dir()): Promise<LabelledImages> {
  return await readBatch(dir, "test_batch");
}

async function readBatch(dir: string, name: string): Promise<LabelledImages> {
  for (const c of candidates(dir, name)) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(c.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    return c.parse(bytes);
  }
  throw new DatasetError(
    `no CIFAR-10 batch '${name}' under ${CIFAR10_ENV}=${dir} (looked in cifar-10-batches-bin/ and cifar-10-batches-py/)`,
  );
}

/**
 * The validation split's size: the last 5,000 of the 50,000 training images (a tenth of a
 * smaller folder) — the rule of tmdc_compiler.cifar_surrogate, so the surrogate never trained
 * on what Truth Maximization validates on.
 */
export function heldOut(n: number, validation = 5000): number {
  return Math.min(validation, Math.max(1, Math.floor(n / 10)));
}

/** The five training batches, cut into Truth Maximization's training and validation splits. */
export async function loadCifar10TrainSplit(
  name: "train" | "validation",
  dir = cifar10Dir(),
): Promise<LabelledImages> {
  return (await loadCifar10TrainSplits(dir))[name === "train" ? 0 : 1];
}

/** Both splits from one read: views into one array (50,000 images are 614 MB as float32). */
export async function loadCifar10TrainSplits(
  dir = cifar10Dir(),
): Promise<[LabelledImages, LabelledImages]> {
  const parts: LabelledImages[] = [];
  for (let b = 1; b <= 5; b++) parts.push(await readBatch(dir, `data_batch_${b}`));
  const n = parts.reduce((a, p) => a + p.n, 0);
  const images = new Float32Array(n * D);
  const labels = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * D);
    labels.set(p.labels, at);
    at += p.n;
  }
  const k = n - heldOut(n);
  const part = (lo: number, hi: number) => ({
    images: images.subarray(lo * D, hi * D),
    labels: labels.subarray(lo, hi),
    n: hi - lo,
  });
  return [part(0, k), part(k, n)];
}
