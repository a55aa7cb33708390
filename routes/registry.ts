/** The bundles the frontend serves: every folder under the models directory whose
 * manifest validates and whose files match their hashes. */
import { join } from "node:path";
import { loadBundle, type LoadedBundle } from "../lib/bundle.ts";
import { BundleError } from "../lib/bundle_manifest.ts";

export class Registry {
  readonly bundles = new Map<string, LoadedBundle>();
  readonly rejected: { dir: string; error: string }[] = [];

  static async scan(modelsDir: string): Promise<Registry> {
    const r = new Registry();
    let entries: Deno.DirEntry[] = [];
    try {
      entries = await Array.fromAsync(Deno.readDir(modelsDir));
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    for (
      const e of entries.filter((e) => e.isDirectory).sort((a, b) => a.name.localeCompare(b.name))
    ) {
      try {
        r.add(await loadBundle(join(modelsDir, e.name)));
      } catch (err) {
        if (!(err instanceof BundleError)) throw err;
        r.rejected.push({ dir: e.name, error: err.message });
      }
    }
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
}
