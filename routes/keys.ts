/**
 * Key management and the audit log (admin keys only): GET/POST /v1/keys, DELETE /v1/keys/{id}
 * (revoke: refused from the next request on), GET /v1/audit (cursor pagination, oldest first).
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Store } from "../store/kv_store.ts";
import { ROLES } from "../store/records.ts";
import { requireAdmin, roleOf } from "./auth.ts";
import { apiRouter } from "./http.ts";
import { problem, problemResponses } from "./problem.ts";
import { IdParam, pageOf } from "./schemas.ts";

const security = [{ bearer: [] }];

const KeyView = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  createdAt: z.string(),
  createdBy: z.string().nullable(),
  revokedAt: z.string().nullable(),
}).openapi("ApiKey");

const NewKey = z.object({
  name: z.string().min(1).max(100),
  role: z.enum(ROLES).default("member"),
}).strict().openapi("NewApiKey");

const AuditEntry = z.object({
  id: z.string(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  target: z.string(),
  detail: z.record(z.string(), z.unknown()).optional(),
}).openapi("AuditEntry");

const listKeys = createRoute({
  method: "get",
  path: "/keys",
  operationId: "listKeys",
  summary: "Every API key of the deployment (never the secret), revoked ones too",
  tags: ["keys"],
  security,
  responses: {
    200: {
      description: "the keys",
      content: { "application/json": { schema: z.object({ keys: z.array(KeyView) }) } },
    },
    ...problemResponses(401, 403),
  },
});

const createKey = createRoute({
  method: "post",
  path: "/keys",
  operationId: "createKey",
  summary: "A new key with a role; the secret is in this answer only",
  tags: ["keys"],
  security,
  request: { body: { content: { "application/json": { schema: NewKey } }, required: true } },
  responses: {
    201: {
      description: "the key",
      content: {
        "application/json": { schema: z.object({ key: z.string(), record: KeyView }) },
      },
    },
    ...problemResponses(400, 401, 403),
  },
});

const revokeKey = createRoute({
  method: "delete",
  path: "/keys/{id}",
  operationId: "revokeKey",
  summary: "Revoke a key: its next request is refused",
  tags: ["keys"],
  security,
  request: { params: IdParam },
  responses: {
    200: { description: "the revoked key", content: { "application/json": { schema: KeyView } } },
    ...problemResponses(401, 403, 404),
  },
});

const listAudit = createRoute({
  method: "get",
  path: "/audit",
  operationId: "listAudit",
  summary: "The audit log (key created/revoked, job created), oldest first, by pages",
  tags: ["keys"],
  security,
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(500).default(100),
      cursor: z.string().max(200).optional(),
    }),
  },
  responses: {
    200: {
      description: "a page of the log",
      content: {
        "application/json": {
          schema: pageOf("entries", AuditEntry),
        },
      },
    },
    ...problemResponses(400, 401, 403),
  },
});

const view = (r: Parameters<typeof roleOf>[0]) => ({
  id: r.id,
  name: r.name,
  role: roleOf(r),
  createdAt: r.createdAt,
  createdBy: r.createdBy ?? null,
  revokedAt: r.revokedAt ?? null,
});

export function keyRoutes(store: Store) {
  return apiRouter()
    .openapi(listKeys, async (c) => {
      requireAdmin(c);
      return c.json({ keys: (await store.listApiKeys()).map(view) }, 200);
    })
    .openapi(createKey, async (c) => {
      requireAdmin(c);
      const body = c.req.valid("json");
      const { key, record } = await store.createApiKey(body.name, body.role, c.get("apiKey").id);
      return c.json({ key, record: view(record) }, 201);
    })
    .openapi(revokeKey, async (c) => {
      requireAdmin(c);
      const rec = await store.revokeApiKey(c.req.valid("param").id, c.get("apiKey").id);
      if (!rec) throw problem(404, "no such key", { code: "unknown-key" });
      return c.json(view(rec), 200);
    })
    .openapi(listAudit, async (c) => {
      requireAdmin(c);
      const q = c.req.valid("query");
      return c.json(await store.listAudit(q.limit, q.cursor), 200);
    });
}
