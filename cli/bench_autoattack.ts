/**
 * `bench autoattack` (spec §8 level 3): AutoAttack on the surrogate bundle, with per-stage
 * robust flags for the paired comparison with fra31/auto-attack.
 */
import { config } from "../config.ts";
import { gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import { autoAttack, resolveAttacks } from "../lib/attacks/autoattack.ts";
import { attackCost } from "../lib/attacks/registry.ts";
import { machine, openSurrogate, writeReport } from "../bench/common.ts";
import { UsageError } from "./errors.ts";
import { defineCommand } from "./command.ts";
import { Progress } from "./progress.ts";
import { countingOracle } from "../lib/attacks/oracle.ts";
import { THREADS } from "./shared_options.ts";

export const benchAutoattack = defineCommand({
  summary: "AutoAttack on the surrogate classifier bundle, per-stage robust flags",
  options: {
    bundle: { type: "bundle", default: config.defaultSurrogate, help: "classifier bundle" },
    n: { type: "int", min: 1, max: 10000, default: 256, help: "images of the seeded subset" },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "subset seed" },
    norm: { type: "enum", values: ["linf", "l2"], default: "linf", help: "threat model" },
    eps: { type: "number", min: 0, default: 8 / 255, help: "perturbation budget" },
    version: {
      type: "enum",
      values: ["standard", "plus", "rand"],
      default: "standard",
      help: "AutoAttack version",
    },
    threads: THREADS,
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  async run(values, _, argv) {
    const { n, norm, eps, version } = values;
    if (norm === "linf" && eps > 1) throw new UsageError(`--eps must be ≤ 1 for linf, got ${eps}`);
    const c = await openSurrogate(values.bundle, values.threads);
    const test = await loadTest(config.root);
    const set = gather(test, seededSubset(test.n, n, values.seed));
    const K = c.classNames.length;
    const progress = new Progress("bench autoattack");
    // an upper bound: AutoAttack stops attacking the points it has broken
    const cost = attackCost({ attack: "autoattack", norm, eps, version, seed: 0 }, K) * n;
    progress.start(`AutoAttack ${version} on ${n} images`, cost, "image evaluations (at most)");
    const oracle = countingOracle(classifierOracle(c), (k) => progress.add(k));
    const t0 = performance.now();
    const r = await autoAttack(oracle, set.images, set.labels, {
      norm,
      eps,
      version,
      seed: 0,
      shape: c.imageShape,
    });
    progress.end();
    const order = r.perAttack.map((p) => p.attack);
    const stages = resolveAttacks({
      norm: "linf",
      eps: 0,
      version: version as "standard",
      seed: 0,
      shape: c.imageShape,
    }, 10)
      .map((a) => {
        const k = order.indexOf(a.name);
        const flags = Array.from(r.cleanCorrect, (cc, i): number => {
          const by = r.brokenBy[i];
          return cc && !(by && order.indexOf(by) <= (k < 0 ? order.length : k)) ? 1 : 0;
        });
        return {
          attack: a.name,
          robust_accuracy: flags.reduce((s, v) => s + v, 0) / n,
          robust: flags,
        };
      });
    const out = {
      benchmark: "autoattack-ts",
      command: `deno task cli bench autoattack ${argv.join(" ")}`,
      bundle: c.id,
      n,
      seed: values.seed,
      norm,
      eps,
      clean_accuracy: r.cleanAccuracy,
      clean: Array.from(r.cleanCorrect),
      stages,
      per_attack: r.perAttack,
      warnings: r.warnings,
      seconds: (performance.now() - t0) / 1000,
      machine: machine(),
    };
    await writeReport(values.json, out, 0);
  },
});
