/**
 * `bench diffpure-choose`: DiffPure's depth t* and DDIM steps, chosen on validation images (never
 * test). For each candidate: clean accuracy, and robust accuracy under a white-box attack through
 * the purifier (PGD with full gradients and EOT over the forward noise, Linf ε) — the figure a
 * defender should optimise, not a transfer one. Rule (fixed in advance): the highest mean of clean
 * and robust accuracy; ties: fewer UNet calls.
 */
import { config } from "../config.ts";
import { runAttack, validateAttack } from "../lib/attacks/registry.ts";
import { modelSet, openSource, openTarget } from "../lib/evaluation/targets.ts";
import { gather, loadTrainSplit, seededSubset } from "../lib/fashion_mnist.ts";
import { wilson } from "../lib/stats.ts";
import type { TargetSpec } from "../lib/evaluation/spec.ts";
import { Progress } from "../cli/progress.ts";
import { machine, openDiffusion, openSurrogate, writeReport } from "./common.ts";

export interface ChooseOptions {
  n: number;
  seed: number;
  tStars: number[];
  steps: number[];
  eps: number;
  pgdSteps: number;
  eot: number;
  json: string;
}

export async function chooseDiffPure(o: ChooseOptions, argv: readonly string[]) {
  const model = await openDiffusion(undefined, 2);
  const clf = await openSurrogate(config.defaultSurrogate, 2);
  const models = modelSet(new Map([[model.id, model]]), new Map([[clf.id, clf]]));
  const val = await loadTrainSplit(config.root, "validation");
  const set = gather(val, seededSubset(val.n, o.n, o.seed));
  const progress = new Progress("diffpure-choose");
  const rows = [];
  for (const tStar of o.tStars) {
    for (const steps of o.steps.filter((s) => s <= tStar)) {
      const spec = {
        kind: "diffpure" as const,
        bundle: model.id,
        classifier: clf.id,
        tStar,
        steps,
        seed: o.seed,
      } satisfies TargetSpec;
      const clean = await openTarget(spec, models).predict(set.images, set.n);
      const attack = validateAttack(
        {
          attack: "pgd",
          norm: "linf",
          eps: o.eps,
          steps: o.pgdSteps,
          eotIter: o.eot,
          seed: o.seed,
        },
        10,
        1_000_000,
      );
      progress.start(`t*=${tStar} ddim${steps}: attack`, 1, "runs");
      const adv = await runAttack(
        openSource(spec, models, {} as never),
        set.images,
        set.labels,
        attack,
        model.imageShape,
      );
      progress.end();
      const advPred = await openTarget(spec, models).predictWithDraw!(adv.xAdv, set.n, 1);
      let c = 0, r = 0;
      for (let i = 0; i < set.n; i++) {
        if (clean[i] === set.labels[i]) {
          c++;
          if (advPred[i] === set.labels[i]) r++;
        }
      }
      rows.push({
        tStar,
        steps,
        clean: c / set.n,
        clean_ci95: wilson(c, set.n),
        robust: r / set.n,
        robust_ci95: wilson(r, set.n),
        score: (c + r) / (2 * set.n),
        unet_calls_per_verdict: steps,
      });
      console.error(JSON.stringify(rows.at(-1)));
    }
  }
  const chosen = rows.reduce((a, b) =>
    b.score > a.score || (b.score === a.score && b.steps < a.steps) ? b : a
  );
  const report = {
    benchmark: "diffpure-choose",
    what:
      "DiffPure (DDIM, null class) + the surrogate on validation: clean, and white-box PGD with full gradients + EOT; chosen by the mean of both",
    command: `deno task cli bench diffpure-choose ${argv.join(" ")}`,
    split: "validation",
    n: set.n,
    seed: o.seed,
    attack: {
      attack: "pgd",
      norm: "linf",
      eps: o.eps,
      steps: o.pgdSteps,
      eot: o.eot,
      rescored_with: "forward-noise draw 1",
    },
    candidates: rows,
    chosen,
    machine: machine(),
  };
  await writeReport(o.json, report, 1);
  return report;
}
