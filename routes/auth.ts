/** Bearer API keys (stored hashed in KV). A factory in Hono's middleware style. */
import type { MiddlewareHandler } from "hono";
import type { Store } from "../store/kv_store.ts";
import type { ApiKeyRecord } from "../store/records.ts";
import { problem } from "./problem.ts";

export type AuthEnv = { Variables: { apiKey: ApiKeyRecord } };

export function bearerAuth(store: Store): MiddlewareHandler<AuthEnv> {
  return async function bearerAuth(c, next) {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const challenge = { "WWW-Authenticate": 'Bearer realm="tmdc"' };
    if (!m) {
      throw problem(401, "send an API key as 'Authorization: Bearer <key>'", {
        code: "missing-api-key",
      }, challenge);
    }
    const record = await store.verifyApiKey(m[1]);
    if (!record) {
      throw problem(401, "the API key is not valid", { code: "invalid-api-key" }, challenge);
    }
    c.set("apiKey", record);
    await next();
  };
}
