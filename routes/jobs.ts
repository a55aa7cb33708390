/** GET /v1/jobs/{id}, GET /v1/jobs/{id}/verdicts, GET /v1/verdicts/{id}. */
import { createRoute } from "@hono/zod-openapi";
import type { Store } from "../store/kv_store.ts";
import { jobDetail, jobVerdicts, verdictView } from "../service/jobs/views.ts";
import { apiRouter } from "./http.ts";
import { problemResponses } from "./problem.ts";
import { IdParam, Job, JobVerdicts, Verdict } from "./schemas.ts";

const security = [{ bearer: [] }];
const errors = problemResponses(401, 404);

const getJob = createRoute({
  method: "get",
  path: "/jobs/{id}",
  operationId: "getJob",
  summary: "A job of any kind and its progress",
  tags: ["jobs"],
  security,
  request: { params: IdParam },
  responses: {
    200: { description: "the job", content: { "application/json": { schema: Job } } },
    ...errors,
  },
});

const getJobVerdicts = createRoute({
  method: "get",
  path: "/jobs/{id}/verdicts",
  operationId: "listJobVerdicts",
  summary: "Every verdict of a classify job so far",
  tags: ["jobs"],
  security,
  request: { params: IdParam },
  responses: {
    200: { description: "the verdicts", content: { "application/json": { schema: JobVerdicts } } },
    ...errors,
  },
});

const getVerdict = createRoute({
  method: "get",
  path: "/verdicts/{id}",
  operationId: "getVerdict",
  summary: "One verdict, by its id {jobId}.{index}",
  tags: ["jobs"],
  security,
  request: { params: IdParam },
  responses: {
    200: { description: "the verdict", content: { "application/json": { schema: Verdict } } },
    ...errors,
  },
});

export function jobRoutes(store: Store) {
  return apiRouter()
    .openapi(getJob, async (c) => c.json(await jobDetail(store, c.req.valid("param").id), 200))
    .openapi(
      getJobVerdicts,
      async (c) => c.json(await jobVerdicts(store, c.req.valid("param").id), 200),
    )
    .openapi(
      getVerdict,
      async (c) => c.json(await verdictView(store, c.req.valid("param").id), 200),
    );
}
