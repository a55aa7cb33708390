/**
 * `deno task cli <command> [options]`: the engine in-process on local bundles (no server
 * needed), and the benchmarks that write the JSON reports under docs/results/. Each command
 * is one module in cli/; `--help` on any of them prints its options. Bad input is one
 * `error: …` line on stderr and exit code 2.
 */
import { type Command, runCommand } from "./cli/command.ts";
import { expectedErrorLine, UsageError } from "./cli/errors.ts";
import { keysCreate, keysList, keysRevoke } from "./cli/keys.ts";
import { classify } from "./cli/classify.ts";
import { evaluateCommand } from "./cli/evaluate.ts";
import { finetune } from "./cli/finetune.ts";
import { benchClassify } from "./cli/bench_classify.ts";
import { benchAutoattack } from "./cli/bench_autoattack.ts";
import { benchTable } from "./cli/bench_table.ts";
import { benchTableMd } from "./cli/bench_table_md.ts";
import { benchTmCurve } from "./cli/bench_tm_curve.ts";
import { benchTmAblation } from "./cli/bench_tm_ablation.ts";
import { benchDumpErrors } from "./cli/bench_dump_errors.ts";
import { benchFrontier } from "./cli/bench_frontier.ts";
import { benchLatency } from "./cli/bench_latency.ts";
import { benchPaper } from "./cli/bench_paper.ts";
import { benchDiffpureChoose } from "./cli/bench_diffpure_choose.ts";
import { benchPaperReport } from "./cli/bench_paper_report.ts";
import { benchDcExact } from "./cli/bench_dc_exact.ts";
import { benchTmStudy } from "./cli/bench_tm_study.ts";
import { benchExactReport } from "./cli/bench_exact_report.ts";
import { benchExactRecheck } from "./cli/bench_exact_recheck.ts";
import { benchLoad } from "./cli/bench_load.ts";
import { benchTake } from "./cli/bench_take.ts";
import { benchUnetThroughput } from "./cli/bench_unet_throughput.ts";

/** Command name (one or two words) → its module. */
export const COMMANDS: Readonly<Record<string, Command>> = Object.freeze({
  "keys create": keysCreate,
  "keys list": keysList,
  "keys revoke": keysRevoke,
  "classify": classify,
  "evaluate": evaluateCommand,
  "finetune": finetune,
  "bench classify": benchClassify,
  "bench autoattack": benchAutoattack,
  "bench table": benchTable,
  "bench table-md": benchTableMd,
  "bench tm-curve": benchTmCurve,
  "bench tm-ablation": benchTmAblation,
  "bench dump-errors": benchDumpErrors,
  "bench frontier": benchFrontier,
  "bench latency": benchLatency,
  "bench paper": benchPaper,
  "bench diffpure-choose": benchDiffpureChoose,
  "bench paper-report": benchPaperReport,
  "bench dc-exact": benchDcExact,
  "bench tm-study": benchTmStudy,
  "bench exact-report": benchExactReport,
  "bench exact-recheck": benchExactRecheck,
  "bench load": benchLoad,
  "bench take": benchTake,
  "bench unet-throughput": benchUnetThroughput,
});

const HELP = new Set(["-h", "--help", "help"]);

/** The command list, or a group's (`bench`, `keys`) when `group` is given. */
function listing(group?: string): string {
  const names = Object.keys(COMMANDS).filter((k) => !group || k.startsWith(`${group} `));
  const w = Math.max(...names.map((k) => k.length)) + 2;
  return [
    `usage: deno task cli ${group ? `${group} <subcommand>` : "<command>"} [options]`,
    "",
    `${group ? "subcommands" : "commands"}:`,
    ...names.map((k) => `  ${k.padEnd(w)}${COMMANDS[k].summary}`),
    "",
    `'deno task cli <command> --help' prints a command's options.`,
  ].join("\n");
}

/** Run the command `args` name; returns the exit code. */
async function main(args: string[]): Promise<number> {
  const [first, second] = args;
  if (first === undefined) {
    console.error(listing());
    return 2;
  }
  if (HELP.has(first)) {
    console.log(listing());
    return 0;
  }
  const two = `${first} ${second}`;
  if (two in COMMANDS) {
    await runCommand(two, COMMANDS[two], args.slice(2));
    return 0;
  }
  if (first in COMMANDS) {
    await runCommand(first, COMMANDS[first], args.slice(1));
    return 0;
  }
  const isGroup = Object.keys(COMMANDS).some((k) => k.startsWith(`${first} `));
  if (isGroup && (second === undefined || HELP.has(second))) {
    (second === undefined ? console.error : console.log)(listing(first));
    return second === undefined ? 2 : 0;
  }
  throw new UsageError(
    isGroup
      ? `unknown subcommand '${two}'; 'deno task cli ${first} --help' lists them`
      : `unknown command '${first}'; 'deno task cli --help' lists them`,
  );
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    const line = expectedErrorLine(e);
    if (line === undefined) throw e;
    console.error(line);
    code = 2;
  }
  if (code !== 0) Deno.exit(code);
}
