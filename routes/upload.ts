/**
 * Request bodies: multipart uploads of images (classify, datasets) with per-file size limits, and
 * JSON bodies validated by a zod schema (evaluations, fine-tunes); every failure is problem+json.
 */
import type { Context } from "hono";
import type { z } from "zod";
import { type DecodedImage, decodeImage, ImageError } from "../lib/image_decode.ts";
import type { ImageShape } from "../lib/model.ts";
import { problem, zodProblem } from "./problem.ts";

export interface UploadedFile {
  name: string;
  bytes: Uint8Array;
  type: string;
}

/** Files and text fields of a multipart body; `allowed` names the text fields accepted. */
export async function readMultipart(
  c: Context,
  maxImageBytes: number,
  allowed: readonly string[],
): Promise<{ files: UploadedFile[]; fields: Record<string, string> }> {
  let form: FormData;
  try {
    form = await c.req.formData();
  } catch {
    throw problem(400, "the multipart body could not be parsed", { code: "invalid-multipart" });
  }
  const files: UploadedFile[] = [];
  const fields: Record<string, string> = {};
  for (const [field, value] of form.entries()) {
    if (typeof value === "string") {
      if (!allowed.includes(field)) {
        throw problem(400, `unexpected form field '${field}'`, { code: "invalid-request" });
      }
      fields[field] = value;
      continue;
    }
    if (value.size > maxImageBytes) {
      throw problem(
        413,
        `image '${value.name}' has ${value.size} bytes, more than ${maxImageBytes}`,
        { code: "image-too-large" },
      );
    }
    files.push({
      name: value.name || `image-${files.length}`,
      bytes: new Uint8Array(await value.arrayBuffer()),
      type: value.type,
    });
  }
  return { files, fields };
}

export function parseJson(s: string, what: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    throw problem(400, `${what} is not valid JSON`, { code: "invalid-request" });
  }
}

/** Decode every upload to the bundle's shape; the first bad one is a 422 naming it. */
export async function decodeAll(
  files: UploadedFile[],
  shape: ImageShape,
  maxPixels: number,
): Promise<DecodedImage[]> {
  const out: DecodedImage[] = [];
  for (const [index, f] of files.entries()) {
    try {
      out.push(await decodeImage(f.bytes, shape, maxPixels));
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      throw problem(422, `image ${index} ('${f.name}'): ${e.message}`, {
        code: "invalid-image",
        index,
        name: f.name,
      });
    }
  }
  return out;
}

/** A JSON body parsed by `schema`: 400 when it is not JSON or does not match. */
export async function jsonBody<S extends z.ZodType>(
  c: Context,
  schema: S,
  what: string,
): Promise<z.infer<S>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw problem(400, "the body must be JSON", { code: "invalid-request" });
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw zodProblem(what, parsed.error);
  return parsed.data;
}
