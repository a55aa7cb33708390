/**
 * Whether a built-in split can serve a request: its images must fit the bundle (else 422
 * `dataset-mismatch`), and CIFAR-10's local folder must be configured on this host (else 422
 * `dataset-unavailable`, naming the variable). Workers read the files themselves; a worker
 * without them fails its unit with the same message.
 */
import { bundleShape, type LoadedBundle } from "../lib/bundle.ts";
import { type BuiltinName, datasetMismatch } from "../lib/builtin_datasets.ts";
import { cifar10Dir } from "../lib/cifar10.ts";
import { DatasetError } from "../lib/fashion_mnist.ts";
import { ServiceError } from "./errors.ts";

export function requireBuiltin(name: BuiltinName, bundles: readonly LoadedBundle[]): void {
  for (const b of bundles) {
    const misfit = datasetMismatch(name, bundleShape(b.manifest), b.manifest.classes.length);
    if (misfit) throw new ServiceError(422, "dataset-mismatch", `${misfit} ('${b.id}')`);
  }
  if (name === "cifar10-test") {
    try {
      cifar10Dir();
    } catch (e) {
      if (!(e instanceof DatasetError)) throw e;
      throw new ServiceError(422, "dataset-unavailable", e.message);
    }
  }
}
