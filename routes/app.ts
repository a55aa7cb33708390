/**
 * The HTTP app: the versioned API under /v1 (each route an OpenAPI definition that validates the
 * request and writes /v1/openapi.json), the worker WebSocket, the web page, the reference at /docs.
 */
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { modelViews } from "../service/registry.ts";
import { type AuthEnv, AuthFailures, bearerAuth, readOnlyForViewers } from "./auth.ts";
import { keyRoutes } from "./keys.ts";
import { Metrics } from "../service/metrics.ts";
import { classifyRoutes } from "./classify.ts";
import { datasetRoutes } from "./datasets.ts";
import type { AppDeps } from "./deps.ts";
import { docsRoutes } from "./docs.ts";
import { evaluationRoutes } from "./evaluations.ts";
import { finetuneRoutes } from "./finetunes.ts";
import { apiRouter, methodNotAllowed, onError } from "./http.ts";
import { jobRoutes } from "./jobs.ts";
import { PAGE, PAGE_JS } from "./page.ts";
import { secureHeaders } from "hono/secure-headers";
import { requestId } from "hono/request-id";
import { cors } from "hono/cors";
import { problemResponse } from "./problem.ts";
import { Health, Models, Ready } from "./schemas.ts";

export type { AppDeps };
export const VERSION = "0.1.0";

const health = createRoute({
  method: "get",
  path: "/v1/health",
  operationId: "getHealth",
  summary: "Liveness, KV kind, bundles served and workers online",
  tags: ["service"],
  security: [],
  responses: { 200: { description: "ok", content: { "application/json": { schema: Health } } } },
});

const ready = createRoute({
  method: "get",
  path: "/v1/ready",
  operationId: "getReady",
  summary: "Readiness: a worker online, the default bundle served, the KV writable (else 503)",
  tags: ["service"],
  security: [],
  responses: {
    200: { description: "ready", content: { "application/json": { schema: Ready } } },
    503: { description: "not ready", content: { "application/json": { schema: Ready } } },
  },
});

const models = createRoute({
  method: "get",
  path: "/v1/models",
  operationId: "listModels",
  summary: "Bundles served (with default settings and metrics) and workers online",
  tags: ["service"],
  security: [],
  responses: {
    200: { description: "the models", content: { "application/json": { schema: Models } } },
  },
});

const openapi = createRoute({
  method: "get",
  path: "/v1/openapi.json",
  operationId: "getOpenApiDocument",
  summary: "This document (OpenAPI 3.1)",
  tags: ["service"],
  security: [],
  responses: {
    200: {
      description: "the OpenAPI document",
      content: { "application/json": { schema: z.record(z.string(), z.unknown()) } },
    },
  },
});

export function createApp(deps: AppDeps) {
  const { store, registry, dispatcher, config } = deps;
  const app = apiRouter();
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", {
    type: "http",
    scheme: "bearer",
    description: "an API key: scripts/deno task cli keys create --name NAME",
  });
  app.onError(onError);
  app.notFound((c) =>
    problemResponse(404, `no route ${c.req.method} ${c.req.path}`, { code: "no-route" })
  );

  const metrics = deps.metrics ?? new Metrics(store, () => dispatcher.peers.size);
  const failures = new AuthFailures(config.limits.maxAuthFailures, config.limits.authWindowMs);
  // Requests and latency by route pattern (not by path: ids would explode the label set).
  app.use("*", async (c, next) => {
    const t0 = performance.now();
    await next();
    const route = c.req.routePath || "unmatched";
    metrics.requests.inc({ method: c.req.method, route, status: String(c.res.status) });
    metrics.latency.observe({ method: c.req.method, route }, (performance.now() - t0) / 1000);
  });
  // Every answer names its request (X-Request-Id, echoed when the client sent one); the access
  // log is one JSON line per request, after the answer, with the key id when one was checked.
  app.use("*", requestId());
  if (config.accessLog) {
    app.use("*", async (c, next) => {
      const t0 = performance.now();
      await next();
      const key = (c.get as (k: string) => { id?: string } | undefined)("apiKey");
      console.log(JSON.stringify({
        t: new Date().toISOString(),
        id: c.get("requestId"),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(performance.now() - t0),
        ...(key?.id ? { key: key.id } : {}),
      }));
    });
  }
  // Cross-origin browsers only from the configured origins (TMDC_CORS_ORIGINS); none by default.
  if (config.corsOrigins.length) {
    app.use(
      "/v1/*",
      cors({
        origin: [...config.corsOrigins],
        allowHeaders: ["Authorization", "Content-Type", "X-Request-Id"],
        exposeHeaders: ["Location", "Retry-After", "X-Request-Id"],
        maxAge: 600,
      }),
    );
  }
  // Security headers on every answer; the CSP allows no inline script, nothing from elsewhere.
  app.use(
    "*",
    secureHeaders({
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", "blob:", "data:"],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        frameAncestors: ["'none'"],
      },
    }),
  );
  app.get("/", (c) => c.html(PAGE));
  // Prometheus: any valid key (a viewer's will do for a scraper: bearer_token in its config).
  app.get("/metrics", bearerAuth(store, failures), async (c) => {
    const { body, contentType } = await metrics.render();
    return c.body(body, 200, { "content-type": contentType });
  });
  app.get(
    "/page.js",
    (c) => c.body(PAGE_JS, 200, { "content-type": "text/javascript; charset=utf-8" }),
  );
  docsRoutes(app);
  app.openapi(health, (c) =>
    c.json({
      status: "ok" as const,
      version: VERSION,
      kv: config.kvPath.startsWith("http") ? "remote" as const : "local" as const,
      bundles: registry.bundles.size,
      workers: dispatcher.peers.size,
    }, 200));
  // Liveness above says the process answers; readiness says it can do work (a load balancer
  // or compose healthcheck routes traffic on this one).
  let probe: { at: number; ok: boolean } | undefined; // one KV write per readyProbeMs at most
  app.openapi(ready, async (c) => {
    const problems: string[] = [];
    const workers = dispatcher.peers.size;
    if (workers === 0) problems.push("no worker is connected");
    const def = registry.resolve(config.defaultBundle);
    if (!def) problems.push(`the default bundle '${config.defaultBundle}' is not served`);
    if (!probe || Date.now() - probe.at > config.readyProbeMs) {
      const ok = await store.probeWrite().then(() => true, (e) => {
        console.error(`[tmdc] readiness: the KV refuses writes: ${(e as Error).message}`);
        return false;
      });
      probe = { at: Date.now(), ok };
    }
    const kvWritable = probe.ok;
    if (!kvWritable) problems.push("the KV refuses writes (the frontend's log says why)");
    const body = {
      status: problems.length ? "not-ready" as const : "ready" as const,
      checks: { workers, default_bundle: def?.id ?? null, kv_writable: kvWritable },
      problems,
    };
    return problems.length ? c.json(body, 503) : c.json(body, 200);
  });
  app.openapi(models, (c) => {
    const workers = dispatcher.summary();
    return c.json({
      models: modelViews(registry, workers),
      // folder names only: the host's paths are nobody's business (the error names the fault)
      rejected: registry.rejected.map((r) => ({
        dir: r.dir.split("/").at(-1) ?? r.dir,
        error: r.error.replaceAll(r.dir, r.dir.split("/").at(-1) ?? r.dir),
      })),
      workers,
    }, 200);
  });
  let document: unknown;
  app.openapi(
    openapi,
    (c) => c.json((document ??= openApiDocument(app)) as Record<string, unknown>, 200),
  );
  // Upgrades to the worker WebSocket are taken by the HTTP server (http_server.ts) before they
  // reach the app; a plain request here gets this answer.
  app.get(
    "/v1/workers/ws",
    () =>
      problemResponse(400, "this endpoint speaks WebSocket only", { code: "websocket-required" }),
  );
  methodNotAllowed(app);

  const api = apiRouter();
  api.use("*", bearerAuth(store, failures));
  api.use("*", readOnlyForViewers());
  api.route("/", keyRoutes(store));
  api.route("/classify", classifyRoutes(deps));
  api.route("/evaluations", evaluationRoutes(deps));
  api.route("/", finetuneRoutes(deps));
  api.route("/datasets", datasetRoutes(deps));
  api.route("/", jobRoutes(store));
  methodNotAllowed(api);
  app.route("/v1", api);
  return app;
}

/** The OpenAPI 3.1 document of every route `app` defines (generated once, on first request). */
function openApiDocument(app: OpenAPIHono<AuthEnv>) {
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "TMDC robustness service",
      version: VERSION,
      description:
        "Diffusion classifiers (Li et al.) with Truth Maximization, evaluated with honest " +
        "attacks. Errors are application/problem+json with a `code`.",
    },
    servers: [{ url: "/", description: "this service" }],
    tags: [
      { name: "classify", description: "label images with a diffusion classifier" },
      { name: "jobs", description: "jobs of every kind and their verdicts" },
      { name: "evaluations", description: "robustness evaluations over workers" },
      { name: "fine-tuning", description: "Truth Maximization and its adapters" },
      { name: "datasets", description: "uploaded labelled sets" },
      { name: "service", description: "health, models, this document" },
    ],
  });
}
