/** Uploaded images, decoded to a bundle's shape before anything is stored. */
import { type DecodedImage, decodeImage, ImageError } from "../lib/image_decode.ts";
import type { ImageShape } from "../lib/model.ts";
import { ServiceError } from "./errors.ts";

/** One file of an upload (multipart part or raw body), already size-checked by the caller. */
export interface UploadedFile {
  name: string;
  bytes: Uint8Array;
  type: string;
}

/** Decode every upload to `shape`; the first bad one is a 422 naming it. */
export async function decodeAll(
  files: readonly UploadedFile[],
  shape: ImageShape,
  maxPixels: number,
  maxAspect?: number,
): Promise<DecodedImage[]> {
  const out: DecodedImage[] = [];
  for (const [index, f] of files.entries()) {
    try {
      out.push(await decodeImage(f.bytes, shape, maxPixels, maxAspect));
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      throw new ServiceError(422, "invalid-image", `image ${index} ('${f.name}'): ${e.message}`, {
        index,
        name: f.name,
      });
    }
  }
  return out;
}
