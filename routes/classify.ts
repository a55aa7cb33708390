/** POST /v1/classify: PNG/JPEG upload (multipart or raw body) → verdicts or a job. */
import { Hono } from "hono";
import type { Config } from "../config.ts";
import { unetCalls } from "../lib/diffusion_classifier.ts";
import {
  checkSettings as validateSettings,
  type DCSettings,
  defaultSettings,
} from "../lib/dc_settings.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import type { Store } from "../store/kv_store.ts";
import type { AuthEnv } from "./auth.ts";
import { jobView } from "./jobs.ts";
import { problem, zodProblem } from "./problem.ts";
import { decodeAll, parseJson, readMultipart } from "./upload.ts";
import { resolveAdapter } from "./finetunes.ts";
import type { Registry } from "./registry.ts";
import { ClassifyOptions } from "./schemas.ts";
import type { Dispatcher } from "./workers.ts";

const IMAGE_TYPES = new Set(["image/png", "image/jpeg"]);

export { defaultSettings };

export function classifyRoutes(
  deps: { store: Store; registry: Registry; dispatcher: Dispatcher; config: Config },
) {
  const { store, registry, dispatcher, config } = deps;
  const limits = config.limits;
  const app = new Hono<AuthEnv>();

  app.post("/", async (c) => {
    // 1. options (query string or multipart field "options")
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    let files: { name: string; bytes: Uint8Array; type: string }[] = [];
    let rawOptions: Record<string, unknown> = {};
    const q = c.req.query();
    if (q.bundle) rawOptions.bundle = q.bundle;
    if (q.adapter) rawOptions.adapter = q.adapter;
    if (q.settings) rawOptions.settings = parseJson(q.settings, "the settings query parameter");

    if (type === "multipart/form-data") {
      const form = await readMultipart(c, limits.maxImageBytes, ["options"]);
      files = form.files;
      if (form.fields.options) {
        rawOptions = {
          ...rawOptions,
          ...(parseJson(form.fields.options, "the options field") as Record<string, unknown>),
        };
      }
    } else if (IMAGE_TYPES.has(type)) {
      const bytes = new Uint8Array(await c.req.arrayBuffer());
      if (bytes.length > limits.maxImageBytes) {
        throw problem(
          413,
          `the image has ${bytes.length} bytes, more than ${limits.maxImageBytes}`,
          { code: "image-too-large" },
        );
      }
      files = [{ name: c.req.header("x-filename") ?? "upload", bytes, type }];
    } else {
      throw problem(
        415,
        "send images as multipart/form-data (fields 'image') or as a raw image/png or image/jpeg body",
        {
          code: "unsupported-media-type",
        },
      );
    }
    const parsed = ClassifyOptions.safeParse(rawOptions);
    if (!parsed.success) throw zodProblem("the classification options", parsed.error);
    const opts = parsed.data;

    // 2. bundle, adapter, settings
    const bundle = registry.resolve(opts.bundle ?? config.defaultBundle);
    if (!bundle) {
      throw problem(404, `unknown bundle '${opts.bundle ?? config.defaultBundle}'`, {
        code: "unknown-bundle",
        available: [...registry.bundles.keys()],
      });
    }
    if (bundle.manifest.kind !== "diffusion") {
      throw problem(
        422,
        `bundle '${bundle.id}' is a ${bundle.manifest.kind}, not a diffusion model`,
        { code: "wrong-bundle-kind" },
      );
    }
    const adapter = opts.adapter ? (await resolveAdapter(store, opts.adapter, bundle.id)).id : null;
    const manifest = bundle.manifest as DiffusionManifest;
    const settings: DCSettings = { ...defaultSettings(manifest), ...opts.settings } as DCSettings;
    try {
      validateSettings(settings, manifest.classes.length, manifest.schedule.num_timesteps);
    } catch (e) {
      throw problem(422, `settings: ${(e as Error).message}`, { code: "invalid-settings" });
    }
    const calls = unetCalls(settings, manifest.classes.length);
    if (calls > limits.maxUnetCallsPerImage) {
      throw problem(
        422,
        `these settings need ${calls} UNet calls per image; the limit is ${limits.maxUnetCallsPerImage}`,
        {
          code: "quota-exceeded",
        },
      );
    }

    // 3. images: all decoded before anything is stored
    if (files.length === 0) throw problem(400, "no image in the request", { code: "no-image" });
    if (files.length > limits.maxImagesPerRequest) {
      throw problem(
        413,
        `${files.length} images in one request; the limit is ${limits.maxImagesPerRequest}`,
        {
          code: "too-many-images",
        },
      );
    }
    const shape = {
      channels: manifest.image.channels,
      height: manifest.image.height,
      width: manifest.image.width,
    };
    const inputs = (await decodeAll(files, shape, limits.maxImagePixels)).map((d, i) => ({
      pixels: new Uint8Array(d.pixels.buffer),
      input: {
        name: files[i].name,
        source: d.source,
        conversion: d.conversion,
        decoder: d.decoder,
      },
    }));

    // 4. store, dispatch, maybe wait
    const job = await store.createJob(
      { kind: "classify", owner: c.get("apiKey").id, bundle: bundle.id, adapter, settings },
      inputs,
    );
    dispatcher.wake();
    const location = `/v1/jobs/${job.id}`;
    const wait = q.wait !== "false" && files.length <= limits.syncImages;
    if (wait && (await dispatcher.waitForJob(job.id, limits.syncWaitMs))) {
      const finished = (await store.getJob(job.id))!;
      return c.json(
        { job: await jobView(store, finished), verdicts: await store.listVerdicts(job.id) },
        200,
        {
          Location: location,
        },
      );
    }
    return c.json({ job: await jobView(store, job) }, 202, { Location: location });
  });
  return app;
}
