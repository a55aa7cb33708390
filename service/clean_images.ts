/**
 * The clean images and labels of an evaluation's dataset, for checking what workers send back
 * (lib/result_checks.ts): uploaded sets from the store, the built-in test splits (Fashion-MNIST,
 * CIFAR-10) from their folders, read once. A frontend without a split's folder cannot check ε on
 * it; it says so once and checks the rest (value range, shapes, labels it knows).
 */
import { DatasetError, type LabelledImages } from "../lib/fashion_mnist.ts";
import { type BuiltinName, loadBuiltin } from "../lib/builtin_datasets.ts";
import type { DatasetRef } from "../lib/evaluation/spec.ts";
import type { Store } from "../store/kv_store.ts";

export interface CleanRows {
  /** float32 CHW images, one per index, in the order asked */
  images: Float32Array[];
  labels: number[];
}

export interface CleanImages {
  rows(ref: DatasetRef, indices: readonly number[]): Promise<CleanRows | null>;
}

export function cleanImages(store: Store, dataRoot: string): CleanImages {
  const tests = new Map<BuiltinName, Promise<LabelledImages | null>>();
  // uploaded sets never change: the last few are kept, not read from KV for every shard
  const uploaded = new Map<string, { f: Float32Array; n: number; labels: number[] }>();
  return {
    async rows(ref, indices) {
      if (ref.name === "uploaded") {
        let ds = uploaded.get(ref.id);
        if (!ds) {
          const rec = await store.getDataset(ref.id);
          const all = rec && await store.getBlob(rec.pixelsBlob);
          if (!rec || !all) return null;
          ds = { f: new Float32Array(all.slice().buffer), n: rec.n, labels: rec.labels };
          uploaded.set(ref.id, ds);
          if (uploaded.size > 4) uploaded.delete(uploaded.keys().next().value!);
        }
        const f = ds.f;
        const D = f.length / ds.n;
        return {
          images: indices.map((i) => f.subarray(i * D, (i + 1) * D)),
          labels: indices.map((i) => ds.labels[i]),
        };
      }
      const name = ref.name;
      let test = tests.get(name);
      if (!test) {
        test = loadBuiltin(name, dataRoot).catch((e) => {
          if (!(e instanceof DatasetError)) throw e;
          console.warn(`[checks] ${e.message}: ε of ${name} results cannot be checked`);
          return null;
        });
        tests.set(name, test);
      }
      const set = await test;
      if (!set) return null;
      const beyond = indices.find((i) => i >= set.n);
      if (beyond !== undefined) {
        // a smaller local copy than the workers': these results go unchecked, and the log says so
        console.warn(
          `[checks] ${name} has ${set.n} images here; index ${beyond} is beyond it: ε not checked`,
        );
        return null;
      }
      const D = set.images.length / set.n;
      return {
        images: indices.map((i) => set.images.subarray(i * D, (i + 1) * D)),
        labels: indices.map((i) => set.labels[i]),
      };
    },
  };
}
