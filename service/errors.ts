/**
 * Errors the service layer raises for its callers to show: an HTTP-like status, a stable
 * machine-readable `code` (the API's problem+json `code`, the CLI's message) and a detail a user
 * can act on. No HTTP framework here: routes/ turns a ServiceError into problem+json.
 */
import type { z } from "zod";

/** The statuses the service answers with (the API documents each). */
export type ServiceStatus = 400 | 401 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503;

export class ServiceError extends Error {
  override name = "ServiceError";
  constructor(
    readonly status: ServiceStatus,
    readonly code: string,
    detail: string,
    /** further problem members, e.g. `available` bundles or the offending `index` */
    readonly extra: Record<string, unknown> = {},
    /** response headers, e.g. Retry-After on a 429 */
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }

  get detail(): string {
    return this.message;
  }
}

/** A zod validation failure as a 400 naming every offending field. */
export function invalidRequest(what: string, error: z.ZodError): ServiceError {
  const where = (i: z.core.$ZodIssue) => i.path.join(".") || "(root)";
  return new ServiceError(
    400,
    "invalid-request",
    `${what} is invalid: ${error.issues.map((i) => `${where(i)}: ${i.message}`).join("; ")}`,
    { errors: error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) },
  );
}

/** JSON text from a form field or query parameter; a 400 when it does not parse. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ServiceError(400, "invalid-request", `${what} is not valid JSON`);
  }
}
