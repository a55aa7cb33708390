/** The HTTP app: versioned API under /v1, the worker WebSocket, the web page. */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Config } from "../config.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import type { Store } from "../store/kv_store.ts";
import { type AuthEnv, bearerAuth } from "./auth.ts";
import { classifyRoutes, defaultSettings } from "./classify.ts";
import { evaluationRoutes } from "./evaluations.ts";
import { finetuneRoutes } from "./finetunes.ts";
import { datasetRoutes } from "./datasets.ts";
import { jobRoutes } from "./jobs.ts";
import { openApiDocument } from "./openapi.ts";
import { PAGE } from "./page.ts";
import { problem, problemResponse } from "./problem.ts";
import type { Registry } from "./registry.ts";
import type { Dispatcher } from "./workers.ts";

export const VERSION = "0.1.0";

export interface AppDeps {
  store: Store;
  registry: Registry;
  dispatcher: Dispatcher;
  config: Config;
}

export function createApp(deps: AppDeps) {
  const { store, registry, dispatcher, config } = deps;
  const app = new Hono<AuthEnv>();

  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    console.error(`[http] ${c.req.method} ${c.req.path}: ${err.stack ?? err}`);
    return problemResponse(500, "internal error; the request was not applied", {
      code: "internal",
    });
  });
  app.notFound((c) =>
    problemResponse(404, `no route ${c.req.method} ${c.req.path}`, { code: "no-route" })
  );

  app.get("/", (c) => c.html(PAGE));
  app.get("/v1/health", (c) =>
    c.json({
      status: "ok" as const,
      version: VERSION,
      kv: config.kvPath.startsWith("http") ? "remote" : "local",
      bundles: registry.bundles.size,
      workers: dispatcher.peers.size,
    }));
  app.get("/v1/openapi.json", (c) => c.json(openApiDocument(VERSION)));
  app.get("/v1/models", (c) => {
    const online = dispatcher.summary();
    return c.json({
      models: [...registry.bundles.values()].map((b) => ({
        id: b.id,
        name: b.manifest.name,
        version: b.manifest.version,
        kind: b.manifest.kind,
        image: b.manifest.image,
        classes: b.manifest.classes,
        defaultSettings: b.manifest.kind === "diffusion"
          ? defaultSettings(b.manifest as DiffusionManifest)
          : undefined,
        metrics: b.manifest.provenance.metrics,
        workersOnline: online.filter((w) => w.bundles.includes(b.id)).length,
      })),
      rejected: registry.rejected,
      workers: online,
    });
  });
  app.get("/v1/workers/ws", (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw problem(400, "this endpoint speaks WebSocket only", { code: "websocket-required" });
    }
    const { socket, response } = Deno.upgradeWebSocket(c.req.raw);
    dispatcher.accept(socket);
    return response;
  });

  const api = new Hono<AuthEnv>();
  api.use("*", bearerAuth(store));
  api.use(
    "/classify",
    bodyLimit({
      maxSize: config.limits.maxUploadBytes,
      onError: () => {
        throw problem(
          413,
          `the request body is larger than ${config.limits.maxUploadBytes} bytes`,
          { code: "body-too-large" },
        );
      },
    }),
  );
  api.route("/classify", classifyRoutes(deps));
  api.route("/evaluations", evaluationRoutes(deps));
  api.route("/", finetuneRoutes(deps));
  api.route("/datasets", datasetRoutes(deps));
  api.route("/", jobRoutes(store));
  app.route("/v1", api);
  return app;
}
