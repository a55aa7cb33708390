/** Options several commands take, declared once (cli/args.ts parses and documents them). */
import { config } from "../config.ts";

export const THREADS = {
  type: "int",
  min: 0,
  default: 0,
  help: "onnxruntime threads (0 = its default)",
} as const;

export const DIFFUSION_BUNDLE = {
  type: "bundle",
  default: config.defaultBundle,
  help: "diffusion bundle",
} as const;

export const SURROGATE_BUNDLE = {
  type: "bundle",
  default: config.defaultSurrogate,
  help: "surrogate classifier bundle",
} as const;

export const DATASET = {
  type: "enum",
  values: ["fashion-mnist-test", "cifar10-test"],
  default: "fashion-mnist-test",
  help: "test split the seeded subset is drawn from (cifar10-test: TMDC_CIFAR10_DIR)",
} as const;
