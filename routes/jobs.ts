/**
 * GET /v1/jobs/{id}, GET /v1/jobs/{id}/verdicts, GET /v1/verdicts/{id}; DELETE /v1/jobs/{id}
 * cancels (its owner or an admin).
 */
import { createRoute } from "@hono/zod-openapi";
import type { Store } from "../store/kv_store.ts";
import {
  jobDetail,
  jobVerdicts,
  listJobPage,
  verdictView,
  visibleTo,
} from "../service/jobs/views.ts";
import { apiRouter } from "./http.ts";
import { problem, problemResponses } from "./problem.ts";
import { callerOf, roleOf } from "./auth.ts";
import { IdParam, Job, JobVerdicts, pageOf, PageQuery, Verdict } from "./schemas.ts";
import { z } from "@hono/zod-openapi";

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

const listJobs = createRoute({
  method: "get",
  path: "/jobs",
  operationId: "listJobs",
  summary: "The team's jobs of one kind, newest first, by pages",
  tags: ["jobs"],
  security,
  request: {
    query: PageQuery.extend({ kind: z.enum(["classify", "evaluate", "finetune"]) }),
  },
  responses: {
    200: {
      description: "a page of jobs",
      content: {
        "application/json": {
          schema: pageOf("jobs", Job),
        },
      },
    },
    ...problemResponses(400, 401),
  },
});

const cancelJob = createRoute({
  method: "delete",
  path: "/jobs/{id}",
  operationId: "cancelJob",
  summary: "Cancel a job (its owner or an admin): queued units never run, running ones stop",
  description: "A worker running one of its units hears so at its next heartbeat and stops; " +
    "whatever it sends after is refused as stale. Finished jobs answer 409.",
  tags: ["jobs"],
  security,
  request: { params: IdParam },
  responses: {
    200: { description: "the cancelled job", content: { "application/json": { schema: Job } } },
    ...problemResponses(401, 403, 404, 409),
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
    .openapi(
      getJob,
      async (c) => c.json(await jobDetail(store, c.req.valid("param").id, callerOf(c)), 200),
    )
    .openapi(listJobs, async (c) => {
      const q = c.req.valid("query");
      return c.json(await listJobPage(store, q.kind, q.limit, q.cursor, callerOf(c)), 200);
    })
    .openapi(cancelJob, async (c) => {
      const id = c.req.valid("param").id;
      const key = c.get("apiKey");
      const job = await store.getJob(id);
      if (!job || !visibleTo(job, callerOf(c))) {
        throw problem(404, `no job '${id}'`, { code: "unknown-job" });
      }
      if (job.owner !== key.id && roleOf(key) !== "admin") {
        throw problem(403, "only the job's owner or an admin may cancel it", {
          code: "not-the-owner",
        });
      }
      const r = await store.cancelJob(id, key.id);
      if (r === null) throw problem(404, `no job '${id}'`, { code: "unknown-job" });
      if (r === "finished") {
        throw problem(409, `job '${id}' has already ended (${job.status})`, {
          code: "job-finished",
        });
      }
      return c.json(await jobDetail(store, id), 200);
    })
    .openapi(
      getJobVerdicts,
      async (c) => c.json(await jobVerdicts(store, c.req.valid("param").id, callerOf(c)), 200),
    )
    .openapi(
      getVerdict,
      async (c) => c.json(await verdictView(store, c.req.valid("param").id, callerOf(c)), 200),
    );
}
