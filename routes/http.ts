/**
 * The HTTP plumbing every route file shares: an OpenAPIHono whose validation failures are
 * problem+json 400s, error mapping (ServiceError, HTTPException) to problem+json, body limits,
 * and 405s with an Allow header for methods a known path does not take.
 */
import { type Hook, OpenAPIHono } from "@hono/zod-openapi";
import type { Context, Env, ErrorHandler, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { invalidRequest, ServiceError } from "../service/errors.ts";
import type { AuthEnv } from "./auth.ts";
import { httpExceptionProblem, problem, problemResponse, serviceProblem } from "./problem.ts";

const WHAT: Record<string, string> = {
  json: "the JSON body",
  query: "the query string",
  param: "the path",
  header: "a header",
  form: "the form",
  cookie: "a cookie",
};

/** The validator hook: a zod failure becomes the API's 400 invalid-request naming each field. */
// deno-lint-ignore no-explicit-any
export const rejectInvalid: Hook<any, AuthEnv, any, any> = (result) => {
  if (!result.success) throw invalidRequest(WHAT[result.target] ?? result.target, result.error);
};

/** A router whose routes are OpenAPI route definitions validated with `rejectInvalid`. */
export function apiRouter(): OpenAPIHono<AuthEnv> {
  return new OpenAPIHono<AuthEnv>({ defaultHook: rejectInvalid });
}

/** Every error a handler or middleware throws, as problem+json. */
export const onError: ErrorHandler = (err, c) => {
  if (err instanceof ServiceError) return serviceProblem(err);
  if (err instanceof HTTPException) return httpExceptionProblem(err);
  console.error(`[http] ${c.req.method} ${c.req.path}: ${err.stack ?? err}`);
  return problemResponse(500, "internal error; the request was not applied", { code: "internal" });
};

/** Refuse bodies over `maxBytes` with a 413 body-too-large, before a handler reads them. */
export function limitBody<E extends Env = AuthEnv>(maxBytes: number): MiddlewareHandler<E> {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw problem(413, `the request body is larger than ${maxBytes} bytes`, {
        code: "body-too-large",
      });
    },
  }) as unknown as MiddlewareHandler<E>;
}

/**
 * After an app's routes are registered: every path it serves answers other methods with a 405
 * and an Allow header (HEAD rides on GET), instead of a 404 that hides that the path exists.
 */
export function methodNotAllowed<E extends Env>(app: OpenAPIHono<E>): void {
  const allowed = new Map<string, Set<string>>();
  for (const r of app.routes) {
    if (r.method === "ALL" || r.path.endsWith("*")) continue; // middleware
    const set = allowed.get(r.path) ?? new Set<string>();
    set.add(r.method);
    if (r.method === "GET") set.add("HEAD");
    allowed.set(r.path, set);
  }
  for (const [path, methods] of allowed) {
    const allow = [...methods].sort().join(", ");
    app.all(path, (c: Context) => {
      return problemResponse(405, `${c.req.method} is not allowed on ${c.req.path}; use ${allow}`, {
        code: "method-not-allowed",
        allow: [...methods].sort(),
      }, { Allow: allow });
    });
  }
}
