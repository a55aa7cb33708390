/**
 * The test splits an evaluation can name instead of an uploaded set: what each holds (classes,
 * image shape, size — seeded subsets are drawn from it) and where it is read from.
 */
import { CIFAR10, loadCifar10Test } from "./cifar10.ts";
import { FASHION_MNIST, type LabelledImages, loadTest } from "./fashion_mnist.ts";
import type { ImageShape } from "./model.ts";

export interface BuiltinDataset {
  classes: number;
  shape: Readonly<ImageShape>;
  /** images in the split: seeded subsets index into it */
  size: number;
  /** where it comes from, for error messages and the API docs */
  source: string;
}

export const BUILTIN_DATASETS = {
  "fashion-mnist-test": {
    classes: FASHION_MNIST.classes,
    shape: FASHION_MNIST.shape,
    size: 10_000,
    source: "Fashion-MNIST's test split (data/fashion-mnist or TMDC_DATA_DIR)",
  },
  "cifar10-test": {
    classes: CIFAR10.classes,
    shape: CIFAR10.shape,
    size: CIFAR10.testSize,
    source: "CIFAR-10's test batch from local files (TMDC_CIFAR10_DIR)",
  },
} as const satisfies Record<string, BuiltinDataset>;
export type BuiltinName = keyof typeof BUILTIN_DATASETS;
export const BUILTIN_NAMES = Object.keys(BUILTIN_DATASETS) as BuiltinName[];

/** The whole split (the repository root locates Fashion-MNIST; CIFAR-10 is TMDC_CIFAR10_DIR). */
export function loadBuiltin(name: BuiltinName, root: string): Promise<LabelledImages> {
  return name === "cifar10-test" ? loadCifar10Test() : loadTest(root);
}

/** Why `name` does not fit a model of this shape and class count, or null when it does. */
export function datasetMismatch(
  name: BuiltinName,
  shape: ImageShape,
  classes: number,
): string | null {
  const b = BUILTIN_DATASETS[name];
  const same = b.shape.channels === shape.channels && b.shape.height === shape.height &&
    b.shape.width === shape.width && b.classes === classes;
  return same
    ? null
    : `${name} holds ${b.classes} classes of ${b.shape.channels}×${b.shape.height}×${b.shape.width} images; the model takes ${classes} classes of ${shape.channels}×${shape.height}×${shape.width}`;
}
