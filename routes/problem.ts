/** RFC 9457 problem details: every error the API returns is application/problem+json. */
import { z } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ServiceError } from "../service/errors.ts";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function problemResponse(
  status: number,
  detail: string,
  extra: Record<string, unknown> = {},
  headers?: HeadersInit,
): Response {
  const body: Problem = {
    type: `https://tmdc.dev/problems/${(extra.code as string | undefined) ?? status}`,
    title: TITLES[status] ?? "Error",
    status,
    detail,
    ...extra,
  };
  const h = new Headers(headers);
  h.set("content-type", "application/problem+json");
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** Throw from middleware; `onError` returns its prepared response (headers included). */
export function problem(
  status: ContentfulStatusCode,
  detail: string,
  extra: Record<string, unknown> = {},
  headers?: HeadersInit,
): HTTPException {
  return new HTTPException(status, { res: problemResponse(status, detail, extra, headers) });
}

/** A service-layer refusal as problem+json: its status, `code`, detail and extra members. */
export function serviceProblem(e: ServiceError): Response {
  return problemResponse(e.status, e.detail, { code: e.code, ...e.extra }, e.headers);
}

/**
 * Hono's own HTTPExceptions (malformed JSON from the validator, an undeclared media type) carry
 * no prepared response: they get the `code` a client would see for the same fault elsewhere.
 */
const CODES: Record<number, string> = {
  400: "invalid-request",
  401: "missing-api-key",
  413: "body-too-large",
  415: "unsupported-media-type",
};

export function httpExceptionProblem(e: HTTPException): Response {
  if (e.res) return e.getResponse();
  return problemResponse(e.status, e.message || (TITLES[e.status] ?? "Error"), {
    code: CODES[e.status] ?? `http-${e.status}`,
  });
}

export const ProblemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().optional(),
  code: z.string().describe(
    "what went wrong, e.g. invalid-request, unknown-bundle, invalid-attack, body-too-large",
  ),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional().describe(
    "invalid-request: every offending field",
  ),
}).catchall(z.unknown()).openapi("Problem");

const WHY: Record<number, string> = {
  400: "malformed request (code invalid-request names every offending field)",
  401: "missing, invalid or revoked API key",
  403: "the key's role does not allow this (viewer: read only; key management: admin)",
  404: "unknown bundle, adapter, job, dataset or other id",
  405: "method not allowed on this path (see Allow)",
  409: "the record's state does not allow it (e.g. cancelling a finished job)",
  413: "body, image or part count over a limit",
  415: "unsupported media type",
  422: "well-formed but refused: invalid settings, attack, image, labels, …",
};

/** OpenAPI responses for the given error statuses, each problem+json. */
export function problemResponses<S extends keyof typeof WHY>(...statuses: S[]) {
  return Object.fromEntries(statuses.map((s) => [s, {
    description: WHY[s],
    content: { "application/problem+json": { schema: ProblemSchema } },
  }])) as Record<S, {
    description: string;
    content: { "application/problem+json": { schema: typeof ProblemSchema } };
  }>;
}
