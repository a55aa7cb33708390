/** OpenAPI 3.1 document generated from the zod schemas that validate requests (routes/schemas.ts). */
import { z } from "zod";
import {
  ClassifyOptions,
  DCSettingsInput,
  Health,
  Job,
  Model,
  Problem,
  Verdict,
} from "./schemas.ts";
import { EvaluationRequest } from "./evaluations.ts";
import { FinetuneRequest } from "./finetunes.ts";

const schema = (s: z.ZodType) =>
  z.toJSONSchema(s, { target: "draft-2020-12", unrepresentable: "any" });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const problemResponse = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ref("Problem") } },
});

export function openApiDocument(version: string) {
  const errors = {
    "400": problemResponse("malformed request"),
    "401": problemResponse("missing or invalid API key"),
    "404": problemResponse("unknown bundle, adapter, job or verdict"),
    "413": problemResponse("upload too large"),
    "415": problemResponse("not an image upload"),
    "422": problemResponse("undecodable image or invalid settings"),
  };
  const get1 = (summary: string) => ({
    get: {
      summary,
      security: [{ bearer: [] }],
      parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
      responses: { "200": { description: "JSON" }, ...errors },
    },
  });
  return {
    openapi: "3.1.0",
    info: {
      title: "TMDC robustness service",
      version,
      description:
        "Diffusion classifiers (Li et al.) with Truth Maximization, evaluated with honest attacks.",
    },
    components: {
      securitySchemes: {
        bearer: {
          type: "http",
          scheme: "bearer",
          description: "API key: deno task cli keys create",
        },
      },
      schemas: {
        Problem: schema(Problem),
        DCSettings: schema(DCSettingsInput),
        ClassifyOptions: schema(ClassifyOptions),
        Verdict: schema(Verdict),
        Job: schema(Job),
        Model: schema(Model),
        Health: schema(Health),
        EvaluationRequest: schema(EvaluationRequest),
        FinetuneRequest: schema(FinetuneRequest),
      },
    },
    paths: {
      "/v1/health": {
        get: {
          summary: "Liveness",
          responses: {
            "200": {
              description: "ok",
              content: { "application/json": { schema: ref("Health") } },
            },
          },
        },
      },
      "/v1/models": {
        get: {
          summary: "Bundles served and workers online",
          responses: {
            "200": {
              description: "models",
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    properties: { models: { type: "array", items: ref("Model") } },
                  },
                },
              },
            },
          },
        },
      },
      "/v1/classify": {
        post: {
          summary: "Classify PNG/JPEG images with a diffusion classifier",
          description:
            "Up to TMDC_SYNC_IMAGES images answer with 200 and their verdicts (unless ?wait=false); larger sets answer 202 with Location: /v1/jobs/{id}.",
          security: [{ bearer: [] }],
          parameters: [
            { name: "bundle", in: "query", schema: { type: "string" } },
            { name: "adapter", in: "query", schema: { type: "string" } },
            {
              name: "settings",
              in: "query",
              description: "DCSettings as JSON",
              schema: { type: "string" },
            },
            { name: "wait", in: "query", schema: { type: "string", enum: ["true", "false"] } },
          ],
          requestBody: {
            required: true,
            content: {
              "multipart/form-data": {
                schema: {
                  type: "object",
                  properties: {
                    image: { type: "array", items: { type: "string", format: "binary" } },
                    options: { type: "string", description: "ClassifyOptions as JSON" },
                  },
                },
              },
              "image/png": { schema: { type: "string", format: "binary" } },
              "image/jpeg": { schema: { type: "string", format: "binary" } },
            },
          },
          responses: {
            "200": {
              description: "finished: the job and its verdicts",
              content: {
                "application/json": {
                  schema: {
                    type: "object",
                    properties: {
                      job: ref("Job"),
                      verdicts: { type: "array", items: ref("Verdict") },
                    },
                  },
                },
              },
            },
            "202": {
              description: "accepted: poll Location",
              headers: { Location: { schema: { type: "string" } } },
              content: {
                "application/json": { schema: { type: "object", properties: { job: ref("Job") } } },
              },
            },
            ...errors,
          },
        },
      },
      "/v1/jobs/{id}": {
        get: {
          summary: "A job and its progress",
          security: [{ bearer: [] }],
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": { description: "job", content: { "application/json": { schema: ref("Job") } } },
            ...errors,
          },
        },
      },
      "/v1/jobs/{id}/verdicts": {
        get: {
          summary: "All verdicts of a job",
          security: [{ bearer: [] }],
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: { "200": { description: "verdicts" }, ...errors },
        },
      },
      "/v1/evaluations": {
        post: {
          summary:
            "Start a robustness evaluation (transfer, adaptive or white-box); 202 + Location",
          security: [{ bearer: [] }],
          requestBody: { content: { "application/json": { schema: ref("EvaluationRequest") } } },
          responses: { "202": { description: "queued job" }, ...errors },
        },
      },
      "/v1/evaluations/{id}": get1("An evaluation: job, report with intervals and sanity checks"),
      "/v1/evaluations/{id}/adversarial/{index}.png": {
        get: {
          summary: "One stored adversarial example as PNG",
          security: [{ bearer: [] }],
          parameters: [
            { name: "id", in: "path", required: true, schema: { type: "string" } },
            { name: "index", in: "path", required: true, schema: { type: "integer" } },
          ],
          responses: { "200": { description: "image/png" }, ...errors },
        },
      },
      "/v1/datasets": {
        post: {
          summary:
            "Upload a labelled image set (multipart: image files in order, labels = JSON array, optional name, bundle)",
          security: [{ bearer: [] }],
          requestBody: { content: { "multipart/form-data": { schema: { type: "object" } } } },
          responses: { "201": { description: "the stored set" }, ...errors },
        },
      },
      "/v1/datasets/{id}": get1("An uploaded set's metadata"),
      "/v1/finetunes": {
        post: {
          summary: "Start a Truth-Maximization fine-tune on one worker; 202 + Location",
          security: [{ bearer: [] }],
          requestBody: { content: { "application/json": { schema: ref("FinetuneRequest") } } },
          responses: { "202": { description: "queued job" }, ...errors },
        },
      },
      "/v1/finetunes/{id}": get1(
        "A fine-tune: step, checkpoints with validation scores, best adapter",
      ),
      "/v1/adapters/{id}": get1("An adapter (one checkpoint) and how it was trained"),
      "/v1/verdicts/{id}": {
        get: {
          summary: "One verdict ({jobId}.{index})",
          security: [{ bearer: [] }],
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": {
              description: "verdict",
              content: { "application/json": { schema: ref("Verdict") } },
            },
            ...errors,
          },
        },
      },
    },
  };
}
