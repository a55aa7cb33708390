/** Shared set-up for service tests: a real KV file, the tiny real bundle, real PNGs. */
import { join } from "node:path";
import { config } from "../config.ts";
import { loadTest } from "../lib/fashion_mnist.ts";
import { encodePng } from "../lib/image_decode.ts";
import { createApp } from "../routes/app.ts";
import { Registry } from "../service/registry.ts";
import { Dispatcher } from "../service/dispatcher.ts";
import { Store } from "../store/kv_store.ts";
import { REPO, TINY_DIFFUSION, TINY_SURROGATE } from "./helpers.ts";

export const SHAPE = { channels: 1, height: 28, width: 28 };
/** A cheap schedule for the tiny bundle: 10·4 + 2·4 = 48 UNet calls per image. */
export const FAST_SETTINGS = {
  stages: [{ nSamples: 4, keep: 2 }, { nSamples: 8, keep: 1 }],
  gridSize: 8,
};

export async function fashionPngs(n: number): Promise<{ png: Uint8Array; label: number }[]> {
  const t = await loadTest(REPO);
  return Promise.all(
    Array.from({ length: n }, async (_, i) => ({
      png: await encodePng(t.images.subarray(i * 784, (i + 1) * 784), SHAPE),
      label: t.labels[i],
    })),
  );
}

/** A models dir holding the tiny diffusion and surrogate bundles. */
export async function tinyModelsDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tmdc-models-" });
  for (const src of [TINY_DIFFUSION, TINY_SURROGATE]) {
    const dst = join(dir, src.split("/").pop()!);
    await Deno.mkdir(dst);
    for await (const e of Deno.readDir(src)) {
      await Deno.copyFile(join(src, e.name), join(dst, e.name));
    }
  }
  return dir;
}

export async function inProcessApp() {
  const dir = await Deno.makeTempDir({ prefix: "tmdc-kv-" });
  const store = await Store.open(join(dir, "kv.sqlite"));
  const registry = await Registry.scan(await tinyModelsDir());
  const cfg = {
    ...config,
    accessLog: false,
    defaultBundle: "tiny-diffusion",
    limits: { ...config.limits, syncWaitMs: 200, maxUnetCallsPerImage: 5000 },
  };
  const dispatcher = new Dispatcher(store, registry, {
    workerToken: "t",
    leaseMs: 1000,
    heartbeatMs: 500,
  });
  const app = createApp({ store, registry, dispatcher, config: cfg });
  const { key } = await store.createApiKey("test");
  return { app, store, registry, key, close: () => store.close() };
}

/** Every KV key except API keys: what a request may have stored. */
export function storedKeys(store: Store): Promise<Deno.KvKey[]> {
  return store.listKeysForDiagnostics();
}
