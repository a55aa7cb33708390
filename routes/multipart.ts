/**
 * multipart/form-data parsed while it streams (busboy), with caps on files, fields, parts and
 * bytes per file enforced as the parts arrive. `Request.formData()` would first build every part:
 * a body of 100,000 empty parts kept the event loop busy for seconds before any check ran.
 */
// @ts-types="./busboy.d.ts"
import busboy, { type Busboy } from "busboy";
import { ServiceError } from "../service/errors.ts";
import type { UploadedFile } from "../service/uploads.ts";

export interface MultipartLimits {
  /** image files accepted; one more is a 413 too-many-images */
  maxFiles: number;
  /** bytes per file; more is a 413 image-too-large */
  maxFileBytes: number;
  /** the text fields accepted (any other is a 400); each at most once */
  fields: readonly string[];
  /** bytes per text field */
  maxFieldBytes: number;
}

export interface Multipart {
  files: UploadedFile[];
  fields: Record<string, string>;
}

/** Every part of `req`'s multipart body, or the first limit or format error as a ServiceError. */
export function readMultipart(req: Request, limits: MultipartLimits): Promise<Multipart> {
  let parser: Busboy;
  try {
    parser = busboy({
      headers: { "content-type": req.headers.get("content-type") ?? "" },
      limits: {
        files: limits.maxFiles,
        fileSize: limits.maxFileBytes,
        fields: limits.fields.length,
        fieldSize: limits.maxFieldBytes,
        // busboy reports a part limit when the limit-th part ends: one more than we accept
        parts: limits.maxFiles + limits.fields.length + 1,
      },
    });
  } catch (e) {
    throw new ServiceError(
      400,
      "invalid-multipart",
      `the multipart body could not be parsed: ${(e as Error).message}`,
    );
  }
  const files: (UploadedFile | null)[] = [];
  const fields: Record<string, string> = {};
  const reader = req.body?.getReader();

  return new Promise<Multipart>((resolve, reject) => {
    let failed = false;
    let pending = 0;
    let ended = false;
    const fail = (e: ServiceError) => {
      if (failed) return;
      failed = true;
      reader?.cancel().catch(() => {});
      parser.removeAllListeners();
      parser.on("error", () => {});
      parser.destroy();
      reject(e);
    };
    const finish = () => {
      if (!failed && ended && pending === 0) {
        resolve({ files: files.filter((f): f is UploadedFile => f !== null), fields });
      }
    };

    parser.on("file", (_name, stream, info) => {
      const slot = files.length;
      files.push(null);
      pending++;
      const chunks: Uint8Array[] = [];
      stream.on("data", (c: Uint8Array) => chunks.push(c));
      stream.on("limit", () =>
        fail(
          new ServiceError(
            413,
            "image-too-large",
            `image '${info.filename}' has more than ${limits.maxFileBytes} bytes`,
          ),
        ));
      stream.on("end", () => {
        pending--;
        const bytes = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
        let o = 0;
        for (const c of chunks) bytes.set(c, o), o += c.length;
        files[slot] = { name: info.filename || `image-${slot}`, bytes, type: info.mimeType };
        finish();
      });
    });
    parser.on("field", (name, value, info) => {
      if (!limits.fields.includes(name)) {
        return fail(new ServiceError(400, "invalid-request", `unexpected form field '${name}'`));
      }
      if (name in fields) {
        return fail(new ServiceError(400, "invalid-request", `form field '${name}' sent twice`));
      }
      if (info.valueTruncated) {
        return fail(
          new ServiceError(
            413,
            "field-too-large",
            `form field '${name}' has more than ${limits.maxFieldBytes} bytes`,
          ),
        );
      }
      fields[name] = value;
    });
    parser.on("filesLimit", () =>
      fail(
        new ServiceError(
          413,
          "too-many-images",
          `more than ${limits.maxFiles} images in one request; the limit is ${limits.maxFiles}`,
        ),
      ));
    parser.on("fieldsLimit", () =>
      fail(
        new ServiceError(
          400,
          "invalid-request",
          `more than ${limits.fields.length} form fields (${limits.fields.join(", ")})`,
        ),
      ));
    parser.on("partsLimit", () =>
      fail(
        new ServiceError(
          413,
          "too-many-parts",
          `more than ${limits.maxFiles + limits.fields.length} parts in one request`,
        ),
      ));
    parser.on("error", (e: Error) =>
      fail(
        new ServiceError(
          400,
          "invalid-multipart",
          `the multipart body could not be parsed: ${e.message}`,
        ),
      ));
    parser.on("close", () => {
      ended = true;
      finish();
    });

    (async () => {
      if (!reader) return parser.end();
      for (;;) {
        const { done, value } = await reader.read();
        if (failed) return;
        if (done) return parser.end();
        // honour backpressure: parse a chunk before reading the next
        if (!parser.write(value)) await new Promise<void>((r) => parser.once("drain", () => r()));
      }
    })().catch((e: Error) => {
      // the body stream failed (client gone, or a body limit cut it)
      if (e instanceof ServiceError) fail(e);
      else {fail(
          new ServiceError(400, "invalid-multipart", `the body could not be read: ${e.message}`),
        );}
    });
  });
}
