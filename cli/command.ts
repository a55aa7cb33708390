/** What one CLI command is: its help, its options, and what it runs with them checked. */
import { type Options, optionsHelp, parseOptions, type Values } from "./args.ts";
import { UsageError } from "./errors.ts";

export interface Command<O extends Options = Options> {
  /** one line for the command list */
  summary: string;
  /** more lines for the command's `--help` (what it writes, where it keeps state) */
  description?: string;
  /** the positional arguments in the usage line, e.g. `FILE…`; absent: none are accepted */
  positionals?: string;
  options: O;
  /** `argv`: the command's arguments as typed, for the `command` field of reports */
  run(values: Values<O>, positionals: string[], argv: readonly string[]): Promise<void>;
}

/** Identity with the option types inferred (a `const` spec gives typed `values` in `run`). */
export function defineCommand<const O extends Options>(c: Command<O>): Command<O> {
  return c;
}

/** The full `--help` of command `name`. */
export function commandHelp(name: string, c: Command): string {
  const pos = c.positionals ? ` ${c.positionals}` : "";
  return [
    `usage: deno task cli ${name}${pos} [options]`,
    "",
    `  ${c.summary}`,
    ...(c.description ? c.description.split("\n").map((l) => `  ${l}`) : []),
    "",
    "options:",
    optionsHelp(c.options),
  ].join("\n");
}

/** Parse `argv` for `c` and run it; `--help` prints the usage and returns. */
export async function runCommand(name: string, c: Command, argv: readonly string[]) {
  const { values, positionals, help } = parseOptions(c.options, argv, !!c.positionals);
  if (help) return console.log(commandHelp(name, c));
  if (c.positionals && !c.positionals.startsWith("[") && positionals.length === 0) {
    throw new UsageError(`${name} needs ${c.positionals}`);
  }
  await c.run(values, positionals, argv);
}
