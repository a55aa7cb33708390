/**
 * POST /v1/evaluations: an attack evaluation as a job sharded over workers (202 + Location).
 * GET  /v1/evaluations/{id}: the job and its report so far.
 * GET  /v1/evaluations/{id}/adversarial/{index}.png: a stored adversarial example.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { adversarialPng, createEvaluation, evaluationView } from "../service/jobs/evaluation.ts";
import { type AppDeps, bodyLimits } from "./deps.ts";
import { callerOf } from "./auth.ts";
import { apiRouter, limitBody } from "./http.ts";
import { problemResponses } from "./problem.ts";
import { Accepted, EvaluationDetail, EvaluationRequest, IdParam } from "./schemas.ts";

const security = [{ bearer: [] }];
const tags = ["evaluations"];

const post = (maxBytes: number) =>
  createRoute({
    method: "post",
    path: "/",
    operationId: "createEvaluation",
    summary: "Start a robustness evaluation (transfer, adaptive or white-box)",
    description:
      "Checks the bundles, adapter, settings and attack quota, stores the evaluation as shards " +
      "for the workers and answers 202 with Location: /v1/evaluations/{id}. Adversarial examples " +
      "are made once per (attack, source, images) and reused for every target.",
    tags,
    security,
    middleware: [limitBody(maxBytes)] as const,
    request: {
      body: { required: true, content: { "application/json": { schema: EvaluationRequest } } },
    },
    responses: {
      202: {
        description: "queued: poll Location",
        headers: z.object({ Location: z.string().describe("/v1/evaluations/{id}") }),
        content: { "application/json": { schema: Accepted } },
      },
      ...problemResponses(400, 401, 404, 413, 415, 422),
    },
  });

const get = createRoute({
  method: "get",
  path: "/{id}",
  operationId: "getEvaluation",
  summary: "An evaluation: its job and report, with intervals and sanity checks",
  tags,
  security,
  request: { params: IdParam },
  responses: {
    200: {
      description: "the job and its report over the shards finished so far",
      content: { "application/json": { schema: EvaluationDetail } },
    },
    ...problemResponses(401, 404),
  },
});

const getAdversarial = createRoute({
  method: "get",
  path: "/{id}/adversarial/{file}",
  operationId: "getAdversarialExample",
  summary: "One stored adversarial example as PNG",
  tags,
  security,
  request: {
    params: IdParam.extend({
      file: z.string().openapi({
        param: { name: "file", in: "path" },
        description: "{index}.png: the image's index in the dataset",
        example: "17.png",
      }),
    }),
  },
  responses: {
    200: {
      description: "the adversarial example, in the evaluation's image shape",
      content: { "image/png": { schema: { type: "string", contentMediaType: "image/png" } } },
    },
    ...problemResponses(401, 404),
  },
});

export function evaluationRoutes(deps: AppDeps) {
  return apiRouter()
    .openapi(post(bodyLimits(deps.config.limits).json), async (c) => {
      const job = await createEvaluation(deps, c.get("apiKey").id, c.req.valid("json"));
      return c.json({ job }, 202, { Location: `/v1/evaluations/${job.id}` });
    })
    .openapi(
      get,
      async (c) => c.json(await evaluationView(deps, c.req.valid("param").id, callerOf(c)), 200),
    )
    .openapi(getAdversarial, async (c) => {
      const { id, file } = c.req.valid("param");
      const png = await adversarialPng(deps, id, file, callerOf(c));
      return c.body(png.slice().buffer, 200, { "content-type": "image/png" });
    });
}
