/** GET /v1/jobs/{id}, GET /v1/jobs/{id}/verdicts, GET /v1/verdicts/{id}. Any key of the deployment may read them: one deployment is one team. */
import { Hono } from "hono";
import type { z } from "zod";
import type { Store } from "../store/kv_store.ts";
import type { Job } from "../store/records.ts";
import type { AuthEnv } from "./auth.ts";
import { problem } from "./problem.ts";
import type { Job as JobSchema } from "./schemas.ts";

export async function jobView(store: Store, job: Job): Promise<z.infer<typeof JobSchema>> {
  const units = await store.listUnits(job.id);
  let progress = 0;
  for (const u of units) {
    if (u.status === "done" || u.status === "failed") progress += 1;
    else if (u.progress && u.progress.total > 0) progress += u.progress.calls / u.progress.total;
  }
  const { owner: _owner, ...rest } = job;
  return {
    ...rest,
    settings: job.settings as unknown as Record<string, unknown>,
    evaluation: job.kind === "evaluate"
      ? job.evaluation as unknown as Record<string, unknown>
      : undefined,
    finetune: job.kind === "finetune"
      ? job.finetune as unknown as Record<string, unknown>
      : undefined,
    progress: units.length ? progress / units.length : 1,
    verdicts: job.kind === "classify"
      ? units.filter((u) => u.status === "done").map((u) => `${job.id}.${u.idx}`)
      : [],
    errors: units.filter((u) => u.status === "failed").map((u) => ({
      index: u.idx,
      error: u.error ?? "failed",
    })),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function jobRoutes(store: Store) {
  const app = new Hono<AuthEnv>();
  app.get("/jobs/:id", async (c) => {
    const id = c.req.param("id");
    const job = UUID.test(id) ? await store.getJob(id) : null;
    if (!job) throw problem(404, `no job '${id}'`, { code: "unknown-job" });
    return c.json(await jobView(store, job));
  });
  app.get("/jobs/:id/verdicts", async (c) => {
    const id = c.req.param("id");
    const job = UUID.test(id) ? await store.getJob(id) : null;
    if (!job) throw problem(404, `no job '${id}'`, { code: "unknown-job" });
    return c.json({ job: id, verdicts: await store.listVerdicts(id) });
  });
  app.get("/verdicts/:id", async (c) => {
    const id = c.req.param("id");
    const m = /^([0-9a-f-]{36})\.(\d{1,6})$/.exec(id);
    const v = m && UUID.test(m[1]) ? await store.getVerdict(m[1], Number(m[2])) : null;
    if (!v) throw problem(404, `no verdict '${id}'`, { code: "unknown-verdict" });
    return c.json(v);
  });
  return app;
}
