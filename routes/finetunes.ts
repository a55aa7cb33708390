/**
 * POST /v1/finetunes (a Truth-Maximization job on one worker), GET /v1/finetunes/{id}
 * (progress, checkpoints, the best adapter), GET /v1/adapters/{id}.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  adapterView,
  createFinetune,
  finetuneView,
  listAdapterPage,
} from "../service/jobs/finetune.ts";
import { type AppDeps, bodyLimits } from "./deps.ts";
import { callerOf } from "./auth.ts";
import { apiRouter, limitBody } from "./http.ts";
import { problemResponses } from "./problem.ts";
import { exportAdapter, importAdapter } from "../service/jobs/adapters.ts";
import {
  Accepted,
  Adapter,
  AdapterFile,
  FinetuneDetail,
  FinetuneRequest,
  IdParam,
  pageOf,
  PageQuery,
} from "./schemas.ts";

const security = [{ bearer: [] }];
const tags = ["fine-tuning"];

const post = (maxBytes: number) =>
  createRoute({
    method: "post",
    path: "/finetunes",
    operationId: "createFinetune",
    summary: "Start a Truth-Maximization fine-tune on one worker",
    description:
      "Every field has the paper's default (AdamW lr 1e-6, batch 4, 3,000 steps, AutoAttack " +
      "plus Linf 0.05 on the surrogate). Answers 202 with Location: /v1/finetunes/{id}.",
    tags,
    security,
    middleware: [limitBody(maxBytes)] as const,
    request: {
      body: { required: true, content: { "application/json": { schema: FinetuneRequest } } },
    },
    responses: {
      202: {
        description: "queued: poll Location",
        headers: z.object({ Location: z.string().describe("/v1/finetunes/{id}") }),
        content: { "application/json": { schema: Accepted } },
      },
      ...problemResponses(400, 401, 404, 413, 415, 422),
    },
  });

const get = createRoute({
  method: "get",
  path: "/finetunes/{id}",
  operationId: "getFinetune",
  summary: "A fine-tune: step, checkpoints with validation scores, the best adapter",
  tags,
  security,
  request: { params: IdParam },
  responses: {
    200: {
      description: "the fine-tune",
      content: { "application/json": { schema: FinetuneDetail } },
    },
    ...problemResponses(401, 404),
  },
});

const getAdapter = createRoute({
  method: "get",
  path: "/adapters/{id}",
  operationId: "getAdapter",
  summary: "An adapter (one checkpoint) and how it was trained",
  tags,
  security,
  request: { params: IdParam },
  responses: {
    200: { description: "the adapter", content: { "application/json": { schema: Adapter } } },
    ...problemResponses(401, 404),
  },
});

const listAdapters = createRoute({
  method: "get",
  path: "/adapters",
  operationId: "listAdapters",
  summary: "Every adapter (each fine-tune checkpoint) of the team, by pages",
  tags,
  security,
  request: { query: PageQuery },
  responses: {
    200: {
      description: "a page of adapters",
      content: {
        "application/json": {
          schema: pageOf("adapters", Adapter),
        },
      },
    },
    ...problemResponses(400, 401),
  },
});

const exportRoute = createRoute({
  method: "get",
  path: "/adapters/{id}/export",
  operationId: "exportAdapter",
  summary: "An adapter as a file: its record and LoRA tensors (base64) with their sha256",
  tags,
  security,
  request: { params: IdParam },
  responses: {
    200: { description: "the file", content: { "application/json": { schema: AdapterFile } } },
    ...problemResponses(401, 404),
  },
});

const importRoute = (maxBytes: number) =>
  createRoute({
    method: "post",
    path: "/adapters/import",
    operationId: "importAdapter",
    summary: "Store an exported adapter (checked against a bundle this deployment serves)",
    tags,
    security,
    middleware: [limitBody(maxBytes)] as const,
    request: {
      body: { required: true, content: { "application/json": { schema: AdapterFile } } },
    },
    responses: {
      201: {
        description: "the new adapter",
        content: { "application/json": { schema: Adapter } },
      },
      ...problemResponses(400, 401, 403, 413, 422),
    },
  });

export function finetuneRoutes(deps: AppDeps) {
  return apiRouter()
    .openapi(exportRoute, async (c) => {
      const id = c.req.valid("param").id;
      return c.json(await exportAdapter(deps, id, callerOf(c)), 200, {
        "Content-Disposition": `attachment; filename="adapter-${id}.json"`,
      });
    })
    .openapi(importRoute(deps.config.limits.maxUploadBytes), async (c) => {
      const rec = await importAdapter(deps, c.get("apiKey").id, c.req.valid("json"));
      return c.json(rec, 201, { Location: `/v1/adapters/${rec.id}` });
    })
    .openapi(listAdapters, async (c) => {
      const q = c.req.valid("query");
      return c.json(await listAdapterPage(deps.store, q.limit, q.cursor, callerOf(c)), 200);
    })
    .openapi(post(bodyLimits(deps.config.limits).json), async (c) => {
      const job = await createFinetune(deps, c.get("apiKey").id, c.req.valid("json"));
      return c.json({ job }, 202, { Location: `/v1/finetunes/${job.id}` });
    })
    .openapi(
      get,
      async (c) =>
        c.json(await finetuneView(deps.store, c.req.valid("param").id, callerOf(c)), 200),
    )
    .openapi(
      getAdapter,
      async (c) => c.json(await adapterView(deps.store, c.req.valid("param").id, callerOf(c)), 200),
    );
}
