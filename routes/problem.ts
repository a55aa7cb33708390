/** RFC 9457 problem details: every error the API returns is application/problem+json. */
import type { z } from "zod";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

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
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function problemResponse(
  status: number,
  detail: string,
  extra: Record<string, unknown> = {},
  headers?: HeadersInit,
) {
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

/** Throw from anywhere in a handler; `onError` returns its prepared response. */
export function problem(
  status: ContentfulStatusCode,
  detail: string,
  extra: Record<string, unknown> = {},
  headers?: HeadersInit,
): HTTPException {
  return new HTTPException(status, { res: problemResponse(status, detail, extra, headers) });
}

/** A zod validation failure as a 400 naming every offending field. */
export function zodProblem(what: string, error: z.ZodError) {
  return problem(
    400,
    `${what} is invalid: ${
      error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")
    }`,
    {
      code: "invalid-request",
      errors: error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    },
  );
}
