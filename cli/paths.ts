/**
 * Where the CLI's paths point. `deno task` runs in the folder of deno.json, so a path the user
 * typed is resolved against the folder they typed it in (INIT_CWD, set by `deno task`), not the
 * process's; defaults (bundles, data, runs/) come from config.ts and never depend on either.
 */
import { isAbsolute, join, resolve } from "node:path";
import { config } from "../config.ts";
import { UsageError } from "./errors.ts";

/** The folder the user ran the command from. */
export function userCwd(): string {
  return Deno.env.get("INIT_CWD") ?? Deno.cwd();
}

/** A path as the user typed it, made absolute against their folder; `-` (stdout) kept. */
export function userPath(p: string): string {
  return p === "-" || isAbsolute(p) ? p : resolve(userCwd(), p);
}

/**
 * A bundle folder from `--bundle NAME|PATH`: a bare name is a folder of the models directory
 * (config.modelsDir), anything with a slash or a leading dot is a path.
 */
export function bundleDir(ref: string = config.defaultBundle): string {
  return /[\\/]/.test(ref) || ref.startsWith(".") ? userPath(ref) : join(config.modelsDir, ref);
}

/** A JSON file the user named (a report, a fine-tune summary); a bad one is a usage error. */
export async function readUserJson<T = unknown>(p: string): Promise<T> {
  const text = await Deno.readTextFile(userPath(p));
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new UsageError(`${p} is not valid JSON: ${(e as Error).message}`);
  }
}
