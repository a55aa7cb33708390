/** Bearer API keys (stored hashed in KV). A factory in Hono's middleware style. */
import type { Context, MiddlewareHandler } from "hono";
import type { Store } from "../store/kv_store.ts";
import type { ApiKeyRecord, Role } from "../store/records.ts";
import type { Caller } from "../service/context.ts";
import { problem } from "./problem.ts";

export type AuthEnv = { Variables: { apiKey: ApiKeyRecord } };

/**
 * Failed authentications per client address in a fixed window: past `max`, a failing request
 * from the address gets 429 with Retry-After until its window ends instead of 401. A key that
 * verifies is always let in, so a guesser behind the same proxy or NAT cannot lock the team out.
 * In memory: one frontend's view (a restart forgets it); at most `maxClients` windows, the
 * oldest evicted first.
 */
export class AuthFailures {
  #windows = new Map<string, { start: number; n: number }>();
  constructor(readonly max: number, readonly windowMs: number, readonly maxClients = 100_000) {}

  /** Seconds until `client` may try again, or 0. */
  blockedFor(client: string, now = Date.now()): number {
    const w = this.#windows.get(client);
    if (!w || now - w.start >= this.windowMs) return 0;
    return w.n >= this.max ? Math.ceil((w.start + this.windowMs - now) / 1000) : 0;
  }

  record(client: string, now = Date.now()): void {
    const w = this.#windows.get(client);
    if (!w || now - w.start >= this.windowMs) {
      this.#windows.delete(client); // re-inserted last: the Map's order is the windows' age
      this.#windows.set(client, { start: now, n: 1 });
      while (this.#windows.size > this.maxClients) {
        this.#windows.delete(this.#windows.keys().next().value!);
      }
    } else w.n++;
  }
}

/** The client's address as the Node adapter passes it (env.incoming), else "local" (in-process). */
function clientOf(c: Context): string {
  const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
  return env?.incoming?.socket?.remoteAddress ?? "local";
}

export function bearerAuth(store: Store, failures?: AuthFailures): MiddlewareHandler<AuthEnv> {
  return async function bearerAuth(c, next) {
    const client = clientOf(c);
    const refuse = (status: 401, detail: string, code: string) => {
      const wait = failures?.blockedFor(client) ?? 0;
      failures?.record(client);
      if (wait > 0) {
        throw problem(
          429,
          `too many failed authentications from this address; retry in ${wait} s`,
          {
            code: "too-many-auth-failures",
          },
          { "Retry-After": String(wait) },
        );
      }
      throw problem(status, detail, { code }, { "WWW-Authenticate": 'Bearer realm="tmdc"' });
    };
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S{1,200})$/i.exec(header);
    if (!m) {
      return refuse(401, "send an API key as 'Authorization: Bearer <key>'", "missing-api-key");
    }
    const record = await store.verifyApiKey(m[1]);
    if (!record) return refuse(401, "the API key is not valid", "invalid-api-key");
    c.set("apiKey", record);
    await next();
  };
}

/** A key's role; keys made before roles existed keep the full power they had. */
export function roleOf(rec: ApiKeyRecord): Role {
  return rec.role ?? "admin";
}

/** Viewers read: any other method from a viewer key is 403 before it reaches a route. */
export function readOnlyForViewers(): MiddlewareHandler<AuthEnv> {
  return async function readOnlyForViewers(c, next) {
    const m = c.req.method;
    if (roleOf(c.get("apiKey")) === "viewer" && m !== "GET" && m !== "HEAD") {
      throw problem(403, "this key is a viewer's: it can read, not create or change", {
        code: "read-only-key",
      });
    }
    await next();
  };
}

/** Admin only (key management, the audit log). */
export function requireAdmin(c: Context<AuthEnv>): void {
  if (roleOf(c.get("apiKey")) !== "admin") {
    throw problem(403, "only an admin key may do this", { code: "admin-only" });
  }
}

/** Who asks, as the service's visibility rules (private jobs) want it. */
export function callerOf(c: Context<AuthEnv>): Caller {
  const key = c.get("apiKey");
  return { id: key.id, admin: roleOf(key) === "admin" };
}
