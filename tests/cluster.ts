/** Real processes for end-to-end tests: the frontend and GPU workers as separate Deno processes. */
import { Cluster } from "../bench/cluster.ts";
import { tinyModelsDir } from "./service_helpers.ts";

export { Cluster, freePort, waitFor } from "../bench/cluster.ts";

/** An end-to-end test: a fresh cluster with its frontend up and an API key; always shut down. */
export function clusterTest(
  name: string,
  fn: (c: Cluster, key: string) => Promise<void>,
  opts: { env?: Record<string, string>; fileLimit?: number } = {},
): void {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async () => {
      const c = await Cluster.create(await tinyModelsDir(), "tiny-diffusion", opts.env);
      try {
        await c.startFrontend({ fileLimit: opts.fileLimit });
        await fn(c, await c.apiKey());
      } finally {
        await c.shutdown();
      }
    },
  });
}
