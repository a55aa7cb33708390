/**
 * Opening a model bundle (DESIGN.md §2): read `manifest.json`, validate it, and check every
 * file against its sha256 — streamed, so multi-gigabyte external-data files are fine. No
 * onnxruntime here: the frontend lists bundles with this module, the worker's ONNX adapter
 * (gpu-worker/onnx_model.ts) opens sessions on a bundle this module has checked.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  BundleError,
  type ClassifierManifest,
  type DiffusionManifest,
  type Manifest,
  parseManifest,
} from "./bundle_manifest.ts";
import type { ImageShape } from "./model.ts";

export interface LoadedBundle<M extends Manifest = Manifest> {
  dir: string;
  manifest: M;
  /** `${name}@${version}` */
  id: string;
}
export type DiffusionBundle = LoadedBundle<DiffusionManifest>;
export type ClassifierBundle = LoadedBundle<ClassifierManifest>;

export function isDiffusion(b: LoadedBundle): b is DiffusionBundle {
  return b.manifest.kind === "diffusion" || b.manifest.kind === "latent-diffusion";
}

export function isClassifier(b: LoadedBundle): b is ClassifierBundle {
  return b.manifest.kind === "classifier";
}

/** The image shape a bundle takes (from its manifest: never a literal). */
export function bundleShape(m: Manifest): ImageShape {
  return { channels: m.image.channels, height: m.image.height, width: m.image.width };
}

/**
 * What the bundle itself does to an image before its diffusion sees it — a latent model's
 * resampling, scaling and encoding — in the words a verdict's `conversion` list uses.
 */
export function modelConversions(m: Manifest): string[] {
  if (m.kind !== "latent-diffusion") return [];
  const l = m.latent;
  const { width: w, height: h } = m.image;
  const up = l.resolution === w && l.resolution === h
    ? []
    : [`upsampled ${w}×${h} → ${l.resolution}×${l.resolution} (${l.resampling}, inside the model)`];
  return [
    ...up,
    `scaled to [${
      l.pixel_range.join(", ")
    }] and encoded by the VAE to a ${l.channels}×${l.height}×${l.width} latent (mean × ${l.scaling_factor})`,
  ];
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  for await (const chunk of file.readable) h.update(chunk);
  return h.digest("hex");
}

/** Read, validate and hash-check a bundle folder. Throws BundleError naming the problem. */
export async function loadBundle(dir: string): Promise<LoadedBundle> {
  const path = join(dir, "manifest.json");
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    throw new BundleError(`${path} does not exist`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new BundleError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  const manifest = parseManifest(json, path);
  for (const g of Object.values(manifest.graphs)) {
    for (const f of [g.file, g.data_file]) {
      if (f && !(f in manifest.files)) {
        throw new BundleError(`graph file '${f}' has no sha256 in the manifest`);
      }
    }
  }
  for (const [file, digest] of Object.entries(manifest.files)) {
    let actual: string;
    try {
      actual = await sha256File(join(dir, file));
    } catch {
      throw new BundleError(`bundle file '${file}' is missing`);
    }
    if (actual !== digest) {
      throw new BundleError(
        `bundle file '${file}' does not match its manifest sha256 (expected ${
          digest.slice(0, 12)
        }…, found ${actual.slice(0, 12)}…)`,
      );
    }
  }
  return { dir, manifest, id: `${manifest.name}@${manifest.version}` };
}

/** A bundle of the wanted kind, or a BundleError saying what it is instead. */
export async function loadDiffusionBundle(dir: string): Promise<DiffusionBundle> {
  const b = await loadBundle(dir);
  if (!isDiffusion(b)) {
    throw new BundleError(`${dir} is a ${b.manifest.kind}, not a diffusion bundle`);
  }
  return b;
}

export async function loadClassifierBundle(dir: string): Promise<ClassifierBundle> {
  const b = await loadBundle(dir);
  if (!isClassifier(b)) {
    throw new BundleError(`${dir} is a ${b.manifest.kind}, not a classifier bundle`);
  }
  return b;
}

/**
 * Every bundle folder under `modelsDir`, sorted by name: the ones that load, and the ones
 * refused with the reason (a missing folder is an empty list).
 */
export async function scanBundles(
  modelsDir: string,
): Promise<{ bundles: LoadedBundle[]; rejected: { dir: string; error: string }[] }> {
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(modelsDir));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const bundles: LoadedBundle[] = [];
  const rejected: { dir: string; error: string }[] = [];
  for (
    const e of entries.filter((e) => e.isDirectory).sort((a, b) => a.name.localeCompare(b.name))
  ) {
    try {
      bundles.push(await loadBundle(join(modelsDir, e.name)));
    } catch (err) {
      if (!(err instanceof BundleError)) throw err;
      rejected.push({ dir: e.name, error: err.message });
    }
  }
  return { bundles, rejected };
}
