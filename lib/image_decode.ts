/**
 * Uploaded image → the bundle's input tensor, with one well-kept decoder (sharp/libvips).
 * PNG and JPEG only; everything the conversion did is returned so a verdict can say it.
 */
import sharp, { type Metadata, type OutputInfo } from "sharp";
import type { ImageShape } from "./model.ts";

export class ImageError extends Error {
  override name = "ImageError";
}

export interface DecodedImage {
  pixels: Float32Array;
  source: { format: string; width: number; height: number; channels: number };
  /** what was done to reach the bundle's input spec */
  conversion: string[];
  decoder: string;
}

export const DECODER = `sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips})`;
const FORMATS = new Set(["png", "jpeg"]);

export async function decodeImage(
  bytes: Uint8Array,
  shape: ImageShape,
  maxPixels: number,
  maxAspect = 16,
): Promise<DecodedImage> {
  if (bytes.length === 0) throw new ImageError("empty image");
  const opts = { failOn: "truncated" as const, limitInputPixels: maxPixels };
  let meta: Metadata;
  try {
    meta = await sharp(bytes, opts).metadata();
  } catch (e) {
    throw new ImageError(`not a decodable image: ${(e as Error).message}`);
  }
  if (!meta.format || !FORMATS.has(meta.format)) {
    throw new ImageError(`unsupported image format ${meta.format ?? "unknown"}; send PNG or JPEG`);
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (w * h > maxPixels) {
    throw new ImageError(`image has ${w}×${h} pixels, more than the limit of ${maxPixels}`);
  }
  // from the header alone: a thin strip costs seconds to decode and resize for nothing
  if (Math.max(w, h) > maxAspect * Math.max(1, Math.min(w, h))) {
    throw new ImageError(`image is ${w}×${h}: its sides differ by more than ${maxAspect}×`);
  }
  const conversion: string[] = [];
  let pipe = sharp(bytes, opts);
  if (meta.hasAlpha) {
    pipe = pipe.flatten({ background: "#000000" });
    conversion.push("alpha flattened onto black");
  }
  if (shape.channels === 1) {
    if ((meta.channels ?? 1) > 1) conversion.push("converted to greyscale");
    pipe = pipe.greyscale();
  } else if (shape.channels === 3) {
    pipe = pipe.toColourspace("srgb");
  }
  if (w !== shape.width || h !== shape.height) {
    pipe = pipe.resize(shape.width, shape.height, { fit: "fill", kernel: "lanczos3" });
    conversion.push(
      `resized ${w}×${h} → ${shape.width}×${shape.height} (lanczos3, aspect not kept)`,
    );
  }
  let raw: { data: Uint8Array; info: OutputInfo };
  try {
    raw = await pipe.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new ImageError(`image could not be decoded: ${(e as Error).message}`);
  }
  const c = raw.info.channels;
  const take = shape.channels;
  if (c < take) throw new ImageError(`decoded ${c} channels, need ${take}`);
  // HWC uint8 → CHW float32 in [0, 1]
  const plane = shape.width * shape.height;
  const pixels = new Float32Array(take * plane);
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < take; k++) pixels[k * plane + p] = raw.data[p * c + k] / 255;
  }
  return {
    pixels,
    source: { format: meta.format, width: w, height: h, channels: meta.channels ?? c },
    conversion,
    decoder: DECODER,
  };
}

/** Encode a CHW float image in [0, 1] as PNG (dataset images, adversarial examples). */
export async function encodePng(pixels: Float32Array, shape: ImageShape): Promise<Uint8Array> {
  const plane = shape.width * shape.height;
  const hwc = new Uint8Array(plane * shape.channels);
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < shape.channels; k++) {
      hwc[p * shape.channels + k] = Math.round(
        Math.min(1, Math.max(0, pixels[k * plane + p])) * 255,
      );
    }
  }
  let pipe = sharp(hwc, {
    raw: { width: shape.width, height: shape.height, channels: shape.channels as 1 | 3 },
  });
  if (shape.channels === 1) pipe = pipe.toColourspace("b-w"); // a greyscale PNG, not RGB
  const buf = await pipe.png().toBuffer();
  return new Uint8Array(buf);
}
