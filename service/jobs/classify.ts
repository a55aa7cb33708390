/**
 * Classification jobs: uploaded images labelled by a diffusion classifier — or by any classifier
 * bundle (a baseline), so a user can compare verdicts — one unit per image.
 * Everything is checked (bundle, adapter, settings, UNet-call quota, every image decoded to the
 * bundle's shape) before anything is stored; a small request waits for its verdicts.
 */
import { z } from "zod";
import { bundleShape, isDiffusion, modelConversions } from "../../lib/bundle.ts";
import {
  type DCSettings,
  DCSettingsOverrides,
  resolveSettings,
  SettingsError,
  withRequestSeed,
} from "../../lib/dc_settings.ts";
import { unetCalls } from "../../lib/diffusion_classifier.ts";
import { admitJob } from "../quota.ts";
import type { Verdict } from "../../store/records.ts";
import type { ServiceDeps } from "../context.ts";
import { invalidRequest, ServiceError } from "../errors.ts";
import { decodeAll, type UploadedFile } from "../uploads.ts";
import { resolveAdapter } from "./finetune.ts";
import { type JobView, jobView } from "./views.ts";

export const ClassifyOptions = z.object({
  bundle: z.string().min(1).max(200).optional().describe(
    "bundle name or name@version; default: the embedded default",
  ),
  adapter: z.string().min(1).max(200).nullable().optional().describe(
    "LoRA adapter id (Truth Maximization)",
  ),
  settings: DCSettingsOverrides.optional(),
  private: z.union([z.boolean(), z.enum(["true", "false"]).transform((v) => v === "true")])
    .optional().describe("visible to its owner and admins only"),
}).strict();
export type ClassifyOptions = z.output<typeof ClassifyOptions>;

export interface ClassifyRequest {
  owner: string;
  files: readonly UploadedFile[];
  /** options as sent (query parameters merged with the multipart `options` field) */
  options: unknown;
  /** answer with the verdicts when they come within the sync wait (small requests only) */
  wait: boolean;
}

export type ClassifyResult =
  | { finished: true; job: JobView; verdicts: Verdict[] }
  | { finished: false; job: JobView };

export async function classify(deps: ServiceDeps, req: ClassifyRequest): Promise<ClassifyResult> {
  const { store, registry, dispatcher, config } = deps;
  const limits = config.limits;
  const parsed = ClassifyOptions.safeParse(req.options);
  if (!parsed.success) throw invalidRequest("the classification options", parsed.error);
  const opts = parsed.data;

  const bundle = registry.get(opts.bundle ?? config.defaultBundle);
  let settings: DCSettings | null = null;
  let adapter: string | null = null;
  if (!isDiffusion(bundle)) {
    // a discriminative classifier: one forward pass, no settings, no adapters
    if (opts.adapter || opts.settings) {
      throw new ServiceError(
        422,
        "invalid-settings",
        `bundle '${bundle.id}' is a classifier: adapters and DC settings apply to diffusion bundles`,
      );
    }
  } else {
    adapter = opts.adapter
      ? (await resolveAdapter(store, opts.adapter, bundle.id, req.owner)).id
      : null;
    try {
      settings = withRequestSeed(resolveSettings(bundle.manifest, opts.settings));
    } catch (e) {
      if (!(e instanceof SettingsError)) throw e;
      throw new ServiceError(422, "invalid-settings", `settings: ${e.message}`);
    }
  }
  const calls = settings ? unetCalls(settings, bundle.manifest.classes.length) : 0;
  if (calls > limits.maxUnetCallsPerImage) {
    throw new ServiceError(
      422,
      "quota-exceeded",
      `these settings need ${calls} UNet calls per image; the limit is ${limits.maxUnetCallsPerImage}`,
    );
  }

  const { files } = req;
  if (files.length === 0) throw new ServiceError(400, "no-image", "no image in the request");
  if (files.length > limits.maxImagesPerRequest) {
    throw new ServiceError(
      413,
      "too-many-images",
      `${files.length} images in one request; the limit is ${limits.maxImagesPerRequest}`,
    );
  }
  const decoded = await decodeAll(
    files,
    bundleShape(bundle.manifest),
    limits.maxImagePixels,
    limits.maxImageAspect,
  );
  const inModel = modelConversions(bundle.manifest);
  const inputs = decoded.map((d, i) => ({
    pixels: new Uint8Array(d.pixels.buffer),
    input: {
      name: files[i].name,
      source: d.source,
      conversion: [...d.conversion, ...inModel],
      decoder: d.decoder,
    },
  }));

  // a discriminative classifier's verdict is one forward pass
  await admitJob(deps, req.owner, Math.max(1, calls) * inputs.length);
  const job = await store.createJob(
    {
      kind: "classify",
      owner: req.owner,
      ...(opts.private ? { private: true } : {}),
      bundle: bundle.id,
      adapter,
      settings,
    },
    inputs,
  );
  dispatcher.wake();
  if (
    req.wait && files.length <= limits.syncImages &&
    await dispatcher.waitForJob(job.id, limits.syncWaitMs)
  ) {
    const finished = (await store.getJob(job.id)) ?? job;
    return {
      finished: true,
      job: await jobView(store, finished),
      verdicts: await store.listVerdicts(job.id),
    };
  }
  return { finished: false, job: await jobView(store, job) };
}
