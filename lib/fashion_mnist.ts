/**
 * Fashion-MNIST IDX reader and the seeded evaluation subsets, matching
 * `compiler/tmdc_compiler/data.py` (same files, same search order, same subset rule).
 */
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { uniform } from "./rng.ts";

/** The dataset is missing or its files are not what they claim to be. */
export class DatasetError extends Error {
  override name = "DatasetError";
}

/** What the built-in splits hold: 10 classes of 1×28×28 images in [0, 1]. */
export const FASHION_MNIST = Object.freeze({
  classes: 10,
  shape: Object.freeze({ channels: 1, height: 28, width: 28 }),
});

export const CLASS_NAMES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
];

export function dataDirs(root: string): string[] {
  return [
    Deno.env.get("TMDC_DATA_DIR"),
    "/usr/share/datasets/fashion-mnist",
    join(root, "data", "fashion-mnist"),
  ]
    .filter((d): d is string => !!d);
}

export function readIdx(bytes: Uint8Array): { dims: number[]; data: Uint8Array } {
  const raw = bytes[0] === 0x1f && bytes[1] === 0x8b ? new Uint8Array(gunzipSync(bytes)) : bytes;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (raw.length < 4 || view.getUint16(0) !== 0 || raw[2] !== 0x08) {
    throw new DatasetError("not an unsigned-byte IDX file");
  }
  const nd = raw[3];
  const dims = Array.from({ length: nd }, (_, i) => view.getUint32(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  const data = raw.subarray(4 + 4 * nd);
  if (data.length !== size) {
    throw new DatasetError(`IDX: expected ${size} bytes of data, found ${data.length}`);
  }
  return { dims, data };
}

export interface LabelledImages {
  images: Float32Array; // n × 784 in [0, 1]
  labels: Int32Array;
  n: number;
}

/** The official test split (used only for reported numbers). */
export function loadTest(root: string): Promise<LabelledImages> {
  return loadIdxPair(root, "t10k");
}

/**
 * The official training set split as the compiler split it (lib/fashion_mnist_split.json,
 * written by `python -m tmdc_compiler.data --export-split`): `train` (55,000) for
 * Truth Maximization, `validation` (5,000) for choosing its checkpoints.
 */
export async function loadTrainSplit(
  root: string,
  name: "train" | "validation",
): Promise<LabelledImages> {
  const all = await loadIdxPair(root, "train");
  const doc = JSON.parse(
    await Deno.readTextFile(join(root, "lib", "fashion_mnist_split.json")),
  ) as { validation: number[] };
  const isVal = new Uint8Array(all.n);
  for (const i of doc.validation) isVal[i] = 1;
  const idx: number[] = [];
  for (let i = 0; i < all.n; i++) if ((isVal[i] === 1) === (name === "validation")) idx.push(i);
  return gather(all, Int32Array.from(idx));
}

async function loadIdxPair(root: string, prefix: string): Promise<LabelledImages> {
  for (const d of dataDirs(root)) {
    try {
      const img = readIdx(await Deno.readFile(join(d, `${prefix}-images-idx3-ubyte.gz`)));
      const lab = readIdx(await Deno.readFile(join(d, `${prefix}-labels-idx1-ubyte.gz`)));
      const images = new Float32Array(img.data.length);
      for (let i = 0; i < images.length; i++) images[i] = img.data[i] / 255;
      return { images, labels: Int32Array.from(lab.data), n: lab.dims[0] };
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  throw new DatasetError(
    `Fashion-MNIST not found in ${dataDirs(root).join(", ")}; run scripts/setup.sh`,
  );
}

/**
 * The evaluation protocol's fixed subset: the first n indices of a permutation made by
 * sorting portable uniforms (seed, stream 0xDA7A). Python: `data.portable_subset`.
 */
export function seededSubset(total: number, n: number, seed: number): Int32Array {
  const u = uniform(seed, 0xda7a, total);
  const idx = Array.from({ length: total }, (_, i) => i).sort((a, b) => u[a] - u[b] || a - b);
  return Int32Array.from(idx.slice(0, n));
}

export function gather(set: LabelledImages, idx: Int32Array): LabelledImages {
  const D = set.images.length / set.n;
  const images = new Float32Array(idx.length * D);
  idx.forEach((k, i) => images.set(set.images.subarray(k * D, (k + 1) * D), i * D));
  return { images, labels: Int32Array.from(idx, (k) => set.labels[k]), n: idx.length };
}
