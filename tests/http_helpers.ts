/** An in-process app for HTTP tests that need other limits or extra bundles than inProcessApp's. */
import { join } from "node:path";
import { config } from "../config.ts";
import { createApp } from "../routes/app.ts";
import { Dispatcher } from "../service/dispatcher.ts";
import { Registry } from "../service/registry.ts";
import { Store } from "../store/kv_store.ts";
import { tinyModelsDir } from "./service_helpers.ts";

export async function customApp(
  opts: {
    limits?: Record<string, number>;
    registry?: (r: Registry) => void;
    config?: Partial<typeof config>;
  } = {},
) {
  const store = await Store.open(join(await Deno.makeTempDir({ prefix: "tmdc-kv-" }), "kv"));
  const registry = await Registry.scan(await tinyModelsDir());
  opts.registry?.(registry);
  const dispatcher = new Dispatcher(store, registry, {
    workerToken: "t",
    leaseMs: 1000,
    heartbeatMs: 500,
  });
  const cfg = {
    ...config,
    accessLog: false,
    defaultBundle: "tiny-diffusion",
    limits: { ...config.limits, syncWaitMs: 200, ...opts.limits },
    ...opts.config,
  };
  const app = createApp({ store, registry, dispatcher, config: cfg });
  const { key } = await store.createApiKey("test");
  return {
    app,
    store,
    registry,
    auth: { authorization: `Bearer ${key}` },
    close: () => store.close(),
  };
}
