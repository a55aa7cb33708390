import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

export const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
export const FIXTURES = join(REPO, "tests", "fixtures");
export const TINY_DIFFUSION = join(FIXTURES, "tiny-diffusion");
export const TINY_SURROGATE = join(FIXTURES, "tiny-surrogate");

// deno-lint-ignore no-explicit-any
export const reference: any = JSON.parse(await Deno.readTextFile(join(FIXTURES, "reference.json")));

/** max |a − b| / max |b| */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let num = 0;
  let den = 1e-30;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

export function assertClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  tol: number,
  what = "values",
): void {
  const e = relErr(a, b);
  if (!(e <= tol)) throw new Error(`${what}: relative error ${e.toExponential(3)} > ${tol}`);
}

/**
 * `deno run cli.ts ARGS` as a user's `deno task cli` from `cwd` (the suite's own INIT_CWD must
 * not leak into it): exit code, stdout and stderr.
 */
export async function runCli(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      "--unstable-kv",
      "--config",
      join(REPO, "deno.json"),
      join(REPO, "cli.ts"),
      ...args,
    ],
    cwd: opts.cwd ?? REPO,
    env: { NO_COLOR: "1", INIT_CWD: opts.cwd ?? REPO, ...opts.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  // Deno's own notice when another process holds node_modules: not the CLI's output
  const stderr = dec.decode(out.stderr).replace(/^Blocking waiting for file lock.*\n/gm, "");
  return { code: out.code, stdout: dec.decode(out.stdout), stderr };
}
