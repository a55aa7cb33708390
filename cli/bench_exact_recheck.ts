/** `bench exact-recheck`: the TS engine re-checks a GPU exact-AutoAttack run, adds transfer. */
import { exactRecheck } from "../bench/exact_recheck.ts";
import { defineCommand } from "./command.ts";
import { DIFFUSION_BUNDLE, SURROGATE_BUNDLE, THREADS } from "./shared_options.ts";

export const benchExactRecheck = defineCommand({
  summary: "worst case over transfer + a GPU exact AutoAttack run, every verdict by the TS DC",
  description:
    "Reads report.json and adv.f32 of compiler/tmdc_compiler/exact_autoattack.py (scripts/\n" +
    "gpu_exact.sh), classifies the same seeded images clean, after the surrogate's transferred\n" +
    "examples and at every adversarial image the run counts broken, with the service's engine.",
  options: {
    report: { type: "path", required: true, help: "exact_autoattack.py's report.json" },
    adv: { type: "path", required: true, help: "its adv.f32 (--save-adv)" },
    bundle: DIFFUSION_BUNDLE,
    adapter: { type: "path", help: "the TMDC adapter file the run attacked (tm-study step-N.bin)" },
    surrogate: SURROGATE_BUNDLE,
    threads: THREADS,
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (values, _, argv) => exactRecheck(values, argv),
});
