/**
 * `bench dump-errors`: the full error grid (lib/error_grid.ts) of a seeded subset of the
 * validation or test split, written as float32 files that any schedule can be simulated on:
 *
 *   DIR/meta.json   bundle, settings (grid, tRange, seed), split, indices, labels, images done
 *   DIR/l1.f32      n × classes × grid, [image][class][grid index]
 *   DIR/l2.f32      the same for L2, from the same UNet pass
 *
 * Images are appended in chunks; a stopped run resumes after the last whole chunk.
 */
import { join } from "node:path";
import { config } from "../config.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { fullGridErrors } from "../lib/error_grid.ts";
import {
  gather,
  type LabelledImages,
  loadTest,
  loadTrainSplit,
  seededSubset,
} from "../lib/fashion_mnist.ts";
import { Progress } from "../cli/progress.ts";
import { machine, openDiffusion, settingsFor, usageError } from "./common.ts";
import type { DCSettingsOverrides } from "../lib/dc_settings.ts";

export interface DumpOptions {
  split: "validation" | "test";
  n: number;
  seed: number;
  bundle: string;
  settings?: DCSettingsOverrides;
  threads: number;
  chunk: number;
  out: string;
}

export interface DumpMeta {
  benchmark: "dump-errors";
  command: string;
  bundle: string;
  settings: DCSettings;
  split: "validation" | "test";
  n: number;
  seed: number;
  subset: string;
  classes: number;
  grid: number;
  indices: number[];
  labels: number[];
  done: number;
  seconds: number;
  machine: ReturnType<typeof machine>;
}

/** The split's images: the validation part of the training split, or the test split. */
export async function splitImages(split: "validation" | "test"): Promise<LabelledImages> {
  return split === "test"
    ? await loadTest(config.root)
    : await loadTrainSplit(config.root, "validation");
}

export async function dumpErrors(o: DumpOptions, argv: readonly string[]): Promise<DumpMeta> {
  const model = await openDiffusion(o.bundle, o.threads);
  const settings = settingsFor(model, o.settings);
  const all = await splitImages(o.split);
  if (o.n > all.n) usageError(`--n ${o.n} exceeds the ${o.split} split (${all.n} images)`);
  const idx = seededSubset(all.n, o.n, o.seed);
  const set = gather(all, idx);
  const K = model.classNames.length;
  const G = settings.gridSize;
  await Deno.mkdir(o.out, { recursive: true });
  const metaPath = join(o.out, "meta.json");
  const fresh: DumpMeta = {
    benchmark: "dump-errors",
    command: `deno task cli bench dump-errors ${argv.join(" ")}`,
    bundle: model.id,
    settings,
    split: o.split,
    n: o.n,
    seed: o.seed,
    subset: `first n of seededSubset(${all.n}, n, seed) of the ${o.split} split`,
    classes: K,
    grid: G,
    indices: Array.from(idx),
    labels: Array.from(set.labels),
    done: 0,
    seconds: 0,
    machine: machine(),
  };
  const old = await Deno.readTextFile(metaPath).then((t) => JSON.parse(t) as DumpMeta).catch(() =>
    null
  );
  if (
    old &&
    (old.bundle !== fresh.bundle || JSON.stringify(old.settings) !== JSON.stringify(settings) ||
      old.split !== o.split || old.seed !== o.seed)
  ) {
    usageError(`${o.out} holds a dump with other settings; pass another --out`);
  }
  const meta: DumpMeta = old
    ? { ...fresh, done: Math.min(old.done, o.n), seconds: old.seconds }
    : fresh;
  const per = K * G * 4;
  // keep exactly the whole images recorded as done (a run stopped mid-chunk may have written
  // more); a file shorter than that lost data: refuse rather than zero-fill it
  for (const f of ["l1.f32", "l2.f32"]) {
    const path = join(o.out, f);
    const size = await Deno.stat(path).then((st) => st.size, () => 0);
    if (size < meta.done * per) {
      usageError(
        `${path} holds ${
          Math.floor(size / per)
        } images, meta.json says ${meta.done}: start a new --out`,
      );
    }
    using file = await Deno.open(path, { create: true, write: true });
    await file.truncate(meta.done * per);
  }
  const save = async () => {
    await Deno.writeTextFile(metaPath + ".tmp", JSON.stringify(meta));
    await Deno.rename(metaPath + ".tmp", metaPath);
  };
  const progress = new Progress("dump-errors");
  progress.start(`${o.split} images`, o.n, "images", meta.done);
  const D = set.images.length / set.n;
  while (meta.done < o.n) {
    const t0 = performance.now();
    const m = Math.min(o.chunk, o.n - meta.done);
    const x = set.images.subarray(meta.done * D, (meta.done + m) * D);
    const g = await fullGridErrors(model, x, m, settings);
    for (const [f, a] of [["l1.f32", g.l1], ["l2.f32", g.l2]] as const) {
      await Deno.writeFile(join(o.out, f), new Uint8Array(a.buffer), { append: true });
      using file = await Deno.open(join(o.out, f), { write: true });
      await file.sync(); // the data is on disk before meta.json says it is there
    }
    meta.done += m;
    meta.seconds += (performance.now() - t0) / 1000;
    await save();
    progress.update(meta.done);
  }
  progress.end();
  await save();
  return meta;
}
