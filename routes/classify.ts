/** POST /v1/classify: PNG/JPEG upload (multipart or raw body) → verdicts (200) or a job (202). */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { parseJson, ServiceError } from "../service/errors.ts";
import { classify } from "../service/jobs/classify.ts";
import type { UploadedFile } from "../service/uploads.ts";
import { type AppDeps, bodyLimits } from "./deps.ts";
import type { AuthEnv } from "./auth.ts";
import { apiRouter, limitBody } from "./http.ts";
import { readMultipart } from "./multipart.ts";
import { problemResponses } from "./problem.ts";
import { Accepted, Classified, ClassifyOptions } from "./schemas.ts";

const IMAGE_TYPES = new Set(["image/png", "image/jpeg"]);
const binary = { type: "string" as const, contentMediaType: "application/octet-stream" };
const location = z.object({ Location: z.string().describe("/v1/jobs/{id}") });

const Query = z.object({
  bundle: z.string().optional().describe("bundle name or name@version (or options.bundle)"),
  adapter: z.string().optional().describe("LoRA adapter id (or options.adapter)"),
  settings: z.string().optional().describe("DCSettings as JSON (or options.settings)"),
  wait: z.string().optional().describe(
    "false: answer 202 at once; otherwise up to TMDC_SYNC_IMAGES images wait for their verdicts",
  ),
});

function route(maxBodyBytes: number) {
  return createRoute({
    method: "post",
    path: "/",
    operationId: "classify",
    summary: "Classify PNG/JPEG images with a diffusion classifier",
    description:
      "Up to TMDC_SYNC_IMAGES images answer 200 with their verdicts (unless wait=false); larger " +
      "sets, or a wait that runs out, answer 202 with Location: /v1/jobs/{id}. Nothing is stored " +
      "unless every image decodes and the options are valid.",
    tags: ["classify"],
    security: [{ bearer: [] }],
    middleware: [limitBody(maxBodyBytes)] as const,
    request: {
      query: Query,
      body: {
        required: true,
        content: {
          "multipart/form-data": {
            schema: {
              type: "object",
              properties: {
                image: { type: "array", items: binary, description: "the images, in order" },
                options: { $ref: "#/components/schemas/ClassifyOptions" },
              },
              required: ["image"],
            },
            encoding: { options: { contentType: "application/json" } },
          },
          "image/png": { schema: binary },
          "image/jpeg": { schema: binary },
        },
      },
    },
    responses: {
      200: {
        description: "finished: the job and its verdicts",
        headers: location,
        content: { "application/json": { schema: Classified } },
      },
      202: {
        description: "accepted: poll Location",
        headers: location,
        content: { "application/json": { schema: Accepted } },
      },
      ...problemResponses(400, 401, 404, 413, 415, 422),
    },
  });
}

export function classifyRoutes(deps: AppDeps) {
  const limits = deps.config.limits;
  const app = apiRouter();
  // the multipart schema names ClassifyOptions by $ref: register it with the document
  app.openAPIRegistry.register("ClassifyOptions", ClassifyOptions);
  return app.openapi(route(bodyLimits(limits).upload), async (c) => {
    const q = c.req.valid("query");
    const options: Record<string, unknown> = {};
    if (q.bundle) options.bundle = q.bundle;
    if (q.adapter) options.adapter = q.adapter;
    if (q.settings) options.settings = parseJson(q.settings, "the settings query parameter");
    const files = await readImages(c, deps, options);
    const r = await classify(deps, {
      owner: c.get("apiKey").id,
      files,
      options,
      wait: q.wait !== "false",
    });
    const headers = { Location: `/v1/jobs/${r.job.id}` };
    return r.finished
      ? c.json({ job: r.job, verdicts: r.verdicts }, 200, headers)
      : c.json({ job: r.job }, 202, headers);
  });
}

/** The uploaded images; a multipart `options` field is merged into `options`. */
async function readImages(
  c: Context<AuthEnv>,
  { config: { limits } }: AppDeps,
  options: Record<string, unknown>,
): Promise<UploadedFile[]> {
  const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
  if (type === "multipart/form-data") {
    const form = await readMultipart(c.req.raw, {
      maxFiles: limits.maxImagesPerRequest,
      maxFileBytes: limits.maxImageBytes,
      fields: ["options"],
      maxFieldBytes: 64 * 1024,
    });
    if (form.fields.options) {
      Object.assign(options, parseJson(form.fields.options, "the options field"));
    }
    return form.files;
  }
  if (IMAGE_TYPES.has(type)) {
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length > limits.maxImageBytes) {
      throw new ServiceError(
        413,
        "image-too-large",
        `the image has ${bytes.length} bytes, more than ${limits.maxImageBytes}`,
      );
    }
    return [{ name: c.req.header("x-filename") ?? "upload", bytes, type }];
  }
  throw new ServiceError(
    415,
    "unsupported-media-type",
    "send images as multipart/form-data (fields 'image') or as a raw image/png or image/jpeg body",
  );
}
