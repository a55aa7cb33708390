/**
 * GET /docs: the API reference rendered by Swagger UI from /v1/openapi.json. Its script and
 * stylesheet are served from the swagger-ui-dist npm package by this frontend (no CDN: the
 * page works where the service runs, without the internet).
 */
import type { Env, Hono } from "hono";
import { join } from "node:path";
import swaggerUiDir from "swagger-ui-dist/absolute-path.js";

const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const INIT = `window.ui = SwaggerUIBundle({
  url: "/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
});
`;

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TMDC API reference</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>`;

/** Mount /docs and its assets on `app`. Assets are read once, on first request. */
export function docsRoutes<E extends Env>(app: Hono<E>): void {
  const cache = new Map<string, Uint8Array<ArrayBuffer>>();
  const dir = swaggerUiDir();
  app.get("/docs", (c) => c.html(PAGE));
  app.get(
    "/docs/init.js",
    (c) => c.body(INIT, 200, { "content-type": ASSETS["swagger-ui-bundle.js"] }),
  );
  app.get("/docs/:asset", async (c) => {
    const name = c.req.param("asset");
    const type = ASSETS[name];
    if (!type) return c.notFound();
    let bytes = cache.get(name);
    if (!bytes) cache.set(name, bytes = await Deno.readFile(join(dir, name)));
    return c.body(bytes, 200, {
      "content-type": type,
      // pinned package version: the bytes only change with deno.json
      "cache-control": "public, max-age=86400",
    });
  });
}
