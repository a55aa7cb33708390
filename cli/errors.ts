/**
 * The errors a command expects (bad input, a bundle that does not check out, a missing file):
 * cli.ts prints them as one `error: …` line and exits 2. Anything else is a bug and keeps its
 * stack trace.
 */
import { BundleError } from "../lib/bundle_manifest.ts";
import { SettingsError } from "../lib/dc_settings.ts";
import { AttackConfigError } from "../lib/attacks/registry.ts";
import { ImageError } from "../lib/image_decode.ts";
import { DatasetError } from "../lib/fashion_mnist.ts";

/** Bad command-line input. */
export class UsageError extends Error {
  override name = "UsageError";
}

const EXPECTED = [
  UsageError,
  BundleError,
  SettingsError,
  AttackConfigError,
  ImageError,
  DatasetError,
  Deno.errors.NotFound,
  Deno.errors.PermissionDenied,
  Deno.errors.IsADirectory,
  Deno.errors.NotADirectory,
];

/** The one line to print for an expected error; undefined for anything else. */
export function expectedErrorLine(e: unknown): string | undefined {
  if (!EXPECTED.some((c) => e instanceof c)) return undefined;
  const msg = (e as Error).message.split("\n").map((l) => l.trim()).filter(Boolean).join(" ");
  return `error: ${msg}`;
}
