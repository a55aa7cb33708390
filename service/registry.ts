/**
 * The model registry: the bundles the service serves (every folder under the models directory
 * whose manifest validates and whose files match their hashes, opened by lib/bundle.ts, so the
 * frontend never loads onnxruntime), resolved by "name" or "name@version".
 */
import {
  type ClassifierBundle,
  type DiffusionBundle,
  isClassifier,
  isDiffusion,
  type LoadedBundle,
  scanBundles,
} from "../lib/bundle.ts";
import { type DCSettings, defaultSettings } from "../lib/dc_settings.ts";
import { ServiceError } from "./errors.ts";

export class Registry {
  readonly bundles = new Map<string, LoadedBundle>();
  readonly rejected: { dir: string; error: string }[] = [];

  static async scan(modelsDir: string): Promise<Registry> {
    const r = new Registry();
    const { bundles, rejected } = await scanBundles(modelsDir);
    for (const b of bundles) r.add(b);
    r.rejected.push(...rejected);
    return r;
  }

  add(b: LoadedBundle): void {
    this.bundles.set(b.id, b);
  }

  /** Resolve "name" (newest version) or "name@version". */
  resolve(ref: string): LoadedBundle | undefined {
    if (this.bundles.has(ref)) return this.bundles.get(ref);
    const matches = [...this.bundles.values()].filter((b) => b.manifest.name === ref);
    return matches.sort((a, b) =>
      b.manifest.version.localeCompare(a.manifest.version, undefined, { numeric: true })
    )[0];
  }

  /** `resolve`, or a 404 naming the bundles there are. `role` says which one of a request's. */
  get(ref: string, role?: string): LoadedBundle {
    const b = this.resolve(ref);
    if (!b) {
      throw new ServiceError(
        404,
        "unknown-bundle",
        `unknown ${role ? `${role} ` : ""}bundle '${ref}'`,
        {
          available: [...this.bundles.keys()],
        },
      );
    }
    return b;
  }

  /** A diffusion bundle, or 404/422 saying what `ref` is instead. `why` ends the 422 detail. */
  diffusion(ref: string, why = "a diffusion model is needed"): DiffusionBundle {
    const b = this.get(ref);
    if (!isDiffusion(b)) {
      throw new ServiceError(
        422,
        "wrong-bundle-kind",
        `bundle '${b.id}' is a ${b.manifest.kind}; ${why}`,
      );
    }
    return b;
  }

  /** A classifier bundle, or 404/422. */
  classifier(ref: string, why = "a classifier is needed"): ClassifierBundle {
    const b = this.get(ref);
    if (!isClassifier(b)) {
      throw new ServiceError(
        422,
        "wrong-bundle-kind",
        `bundle '${b.id}' is a ${b.manifest.kind}; ${why}`,
      );
    }
    return b;
  }
}

/** One worker as the dispatcher reports it (the fields GET /v1/models shows). */
export interface OnlineWorker {
  id: string;
  bundles: string[];
}

export interface ModelView {
  id: string;
  name: string;
  version: string;
  kind: "diffusion" | "latent-diffusion" | "classifier";
  image: LoadedBundle["manifest"]["image"];
  classes: string[];
  defaultSettings?: DCSettings;
  metrics?: unknown;
  /** architecture and size, as the compiler wrote them */
  architecture?: Record<string, unknown>;
  /** a classifier's training: clean, or PGD adversarial training with its ε and steps */
  training?: unknown;
  workersOnline: number;
}

/** Every bundle with its documented defaults and how many online workers hold it. */
export function modelViews(registry: Registry, online: readonly OnlineWorker[]): ModelView[] {
  return [...registry.bundles.values()].map((b) => ({
    id: b.id,
    name: b.manifest.name,
    version: b.manifest.version,
    kind: b.manifest.kind,
    image: b.manifest.image,
    classes: b.manifest.classes,
    defaultSettings: isDiffusion(b) ? defaultSettings(b.manifest) : undefined,
    metrics: b.manifest.provenance.metrics,
    ...(b.manifest.model ? { architecture: b.manifest.model } : {}),
    ...(isClassifier(b) && b.manifest.training ? { training: b.manifest.training } : {}),
    workersOnline: online.filter((w) => w.bundles.includes(b.id)).length,
  }));
}
