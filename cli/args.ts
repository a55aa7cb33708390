/**
 * The CLI's one argument parser: node:util parseArgs (strict) underneath, typed options with
 * their checks declared beside their help text, so a command's usage and its validation cannot
 * drift. Every bad input becomes a `UsageError` (cli/errors.ts) with a one-line message; cli.ts
 * prints it as `error: …` and exits 2.
 */
import { parseArgs } from "node:util";
import { DCSettingsOverrides } from "../lib/dc_settings.ts";
import { UsageError } from "./errors.ts";
import { bundleDir, userPath } from "./paths.ts";

interface Common {
  /** one line for `--help` */
  help: string;
  /** the value's placeholder in `--help` (derived from the type when absent) */
  arg?: string;
}
interface MayRequire {
  required?: boolean;
}
/** Ranges are inclusive. */
interface Range {
  min?: number;
  max?: number;
}

export type OptionSpec =
  | Common & MayRequire & { type: "string"; default?: string }
  /** a file or folder, resolved against the user's folder; `-` (stdout) is kept */
  | Common & MayRequire & { type: "path"; default?: string }
  /** a bundle by name (a folder of config.modelsDir) or by path; the value is the folder */
  | Common & MayRequire & { type: "bundle"; default?: string }
  | Common & MayRequire & Range & { type: "int"; default?: number }
  /** `above`: exclusive lower bound (a positive scale, a learning rate) */
  | Common & MayRequire & Range & { type: "number"; default?: number; above?: number }
  | Common & MayRequire & { type: "enum"; values: readonly string[]; default?: string }
  /** a comma-separated list of integers */
  | Common & MayRequire & Range & { type: "ints"; default?: readonly number[] }
  | Common & { type: "boolean" }
  /** JSON overrides of the bundle's default DC settings (lib/dc_settings.ts) */
  | Common & { type: "settings" };

export type Options = Readonly<Record<string, OptionSpec>>;

type ValueOf<S> = S extends { type: "int" | "number" } ? number
  : S extends { type: "boolean" } ? boolean
  : S extends { type: "enum"; values: readonly (infer E)[] } ? E
  : S extends { type: "ints" } ? number[]
  : S extends { type: "settings" } ? DCSettingsOverrides
  : string;
type Always<S> = S extends { type: "boolean" } ? true
  : S extends { default: unknown } ? true
  : S extends { required: true } ? true
  : false;

/** The parsed values: options with a default (or required, or boolean) are never undefined. */
export type Values<O extends Options> = {
  -readonly [K in keyof O]: Always<O[K]> extends true ? ValueOf<O[K]> : ValueOf<O[K]> | undefined;
};

export interface Parsed<O extends Options> {
  values: Values<O>;
  positionals: string[];
  /** `-h` / `--help` was given: nothing else was checked */
  help: boolean;
}

const oneLine = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean).join(" ");

/**
 * Parse and check `args` against `spec` (`-h/--help` is always accepted). Throws UsageError on
 * an unknown flag, a missing or malformed value, a value out of range or a missing required
 * option.
 */
export function parseOptions<const O extends Options>(
  spec: O,
  args: readonly string[],
  allowPositionals = false,
): Parsed<O> {
  const raw = rawParse(spec, args, allowPositionals);
  if (raw.values.help) return { values: {} as Values<O>, positionals: [], help: true };
  const values: Record<string, unknown> = {};
  // values given first, so `--source foo` is named even when a required option is missing too
  const entries = Object.entries(spec);
  for (const [name, s] of entries) {
    const v = raw.values[name];
    if (v !== undefined) values[name] = convert(name, s, v);
  }
  for (const [name, s] of entries) {
    if (raw.values[name] === undefined) values[name] = defaultOf(name, s);
  }
  return { values: values as Values<O>, positionals: raw.positionals, help: false };
}

function rawParse(spec: Options, args: readonly string[], allowPositionals: boolean) {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, s] of Object.entries(spec)) {
    options[name] = { type: s.type === "boolean" ? "boolean" : "string" };
  }
  // `--n -1` is a value, not a flag: parseArgs would call it ambiguous and tell the user to
  // write `--n=-1`; joining them lets the range check give the useful message instead.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = /^--([^=]+)$/.exec(args[i])?.[1];
    if (
      name && options[name]?.type === "string" && i + 1 < args.length &&
      /^-(\d|\.\d)/.test(args[i + 1])
    ) {
      joined.push(`${args[i]}=${args[++i]}`);
    } else joined.push(args[i]);
  }
  try {
    return parseArgs({ args: joined, options, strict: true, allowPositionals });
  } catch (e) {
    if (e instanceof TypeError && String((e as { code?: string }).code).startsWith("ERR_PARSE")) {
      const msg = oneLine(e.message);
      throw new UsageError(`${msg[0].toLowerCase()}${msg.slice(1)} (see --help)`);
    }
    throw e;
  }
}

function defaultOf(name: string, s: OptionSpec): unknown {
  if (s.type === "boolean") return false;
  if (s.type === "settings") return undefined;
  if ("required" in s && s.required) throw new UsageError(`--${name} is required`);
  if (s.default === undefined) return undefined;
  if (s.type === "path") return userPath(s.default);
  if (s.type === "bundle") return bundleDir(s.default);
  if (s.type === "ints") return [...s.default];
  return s.default;
}

const rangeText = (s: Range & { above?: number }) => {
  const lo = s.above !== undefined ? `> ${s.above}` : s.min !== undefined ? `≥ ${s.min}` : "";
  const hi = s.max !== undefined ? `≤ ${s.max}` : "";
  if (s.min !== undefined && s.max !== undefined) return ` in [${s.min}, ${s.max}]`;
  return [lo, hi].filter(Boolean).map((t) => ` ${t}`).join(" and");
};

function integer(name: string, s: Range, v: string): number {
  const x = Number(v);
  if (!/^[+-]?\d+$/.test(v.trim()) || !Number.isSafeInteger(x) || !inRange(s, x)) {
    throw new UsageError(`--${name} must be an integer${rangeText(s)}, got '${v}'`);
  }
  return x;
}

const inRange = (s: Range & { above?: number }, x: number) =>
  (s.min === undefined || x >= s.min) && (s.max === undefined || x <= s.max) &&
  (s.above === undefined || x > s.above);

function convert(name: string, s: OptionSpec, v: string | boolean): unknown {
  if (s.type === "boolean") return v;
  const text = v as string;
  switch (s.type) {
    case "string":
      return text;
    case "path":
      return userPath(text);
    case "bundle":
      if (!text) throw new UsageError(`--${name} needs a bundle name or folder`);
      return bundleDir(text);
    case "int":
      return integer(name, s, text);
    case "number": {
      const x = Number(text);
      if (text.trim() === "" || !Number.isFinite(x) || !inRange(s, x)) {
        throw new UsageError(`--${name} must be a number${rangeText(s)}, got '${text}'`);
      }
      return x;
    }
    case "enum":
      if (!s.values.includes(text)) {
        throw new UsageError(`--${name} must be one of ${s.values.join(", ")}; got '${text}'`);
      }
      return text;
    case "ints":
      return text.split(",").map((p) => integer(name, s, p.trim()));
    case "settings": {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch (e) {
        throw new UsageError(`--${name} is not valid JSON: ${oneLine((e as Error).message)}`);
      }
      const r = DCSettingsOverrides.safeParse(json);
      if (!r.success) {
        throw new UsageError(
          `--${name}: ${
            r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")
          }`,
        );
      }
      return r.data;
    }
  }
}

function placeholder(s: OptionSpec): string {
  if (s.arg) return s.arg;
  switch (s.type) {
    case "boolean":
      return "";
    case "enum":
      return s.values.join("|");
    case "int":
      return "N";
    case "number":
      return "X";
    case "ints":
      return "N,N,…";
    case "path":
      return "PATH";
    case "bundle":
      return "NAME|DIR";
    case "settings":
      return "JSON";
    default:
      return "S";
  }
}

function detail(s: OptionSpec): string {
  const parts: string[] = [];
  if (s.type === "int") parts.push(`integer${rangeText(s)}`);
  if (s.type === "number" && (s.min ?? s.max ?? s.above) !== undefined) {
    parts.push(`number${rangeText(s)}`);
  }
  if ("required" in s && s.required) parts.push("required");
  if ("default" in s && s.default !== undefined) {
    const d = Array.isArray(s.default) ? s.default.join(",") : String(s.default);
    parts.push(`default ${d}`);
  }
  return parts.map((p) => ` · ${p}`).join("");
}

/** The options part of a command's `--help`. */
export function optionsHelp(spec: Options): string {
  const rows = Object.entries(spec).map(([name, s]) => {
    const arg = placeholder(s);
    return [`--${name}${arg ? ` ${arg}` : ""}`, `${s.help}${detail(s)}`];
  });
  rows.push(["-h, --help", "print this help"]);
  const w = Math.min(34, Math.max(...rows.map(([l]) => l.length)) + 2);
  return rows.map(([l, r]) => `  ${l.padEnd(w)}${l.length >= w ? `\n  ${" ".repeat(w)}` : ""}${r}`)
    .join("\n");
}
