/**
 * `deno task cli bench exact-recheck`: the service's own engine re-checks a PyTorch exact
 * AutoAttack run (compiler/tmdc_compiler/exact_autoattack.py, run on a GPU lease) and adds the
 * transferred examples, so each cell's figure is the worst case per image over transfer and the
 * exact attack, every verdict taken by the TypeScript DC (ONNX Runtime) that serves users.
 *
 * Per image: robust = right clean (TS) and right on both transferred examples (TS) and — where
 * the PyTorch run counts the image broken — right on its adversarial image (TS). An image the
 * PyTorch run counts broken but the TS engine classifies right stays robust and is listed
 * (`disagreements`): fp32 on a GPU and ONNX Runtime on a CPU round differently near ties.
 */
import { config } from "../config.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import { runAttack, validateAttack } from "../lib/attacks/registry.ts";
import type { DCSettings } from "../lib/dc_settings.ts";
import { modelSet, openTarget } from "../lib/evaluation/targets.ts";
import { gather, loadTest, loadTrainSplit, seededSubset } from "../lib/fashion_mnist.ts";
import { gatherRows } from "../lib/attacks/oracle.ts";
import type { Norm } from "../lib/attacks/projections.ts";
import { unpackState } from "../lib/truth_max.ts";
import { wilson } from "../lib/stats.ts";
import { Progress } from "../cli/progress.ts";
import { TRANSFER } from "./dc_exact.ts";
import {
  machine,
  openDiffusion,
  openSurrogate,
  settingsFor,
  usageError,
  writeReport,
} from "./common.ts";

/** What bench exact-recheck reads of exact_autoattack.py's report.json. */
interface GpuReport {
  bundle: string;
  adapter: string | null;
  /** absent in runs before --decide real */
  bookkeeping?: string;
  split: "test" | "validation";
  n: number;
  seed: number;
  indices: number[];
  clean: number[];
  command: string;
  machine: Record<string, string>;
  cells: {
    norm: Norm;
    eps: number;
    budget_multiplier: number;
    iterations: number;
    complete: boolean;
    robust: number[];
    robust_accuracy: number;
    stages: { attack: string }[];
    adv_offset_images: number;
  }[];
}

export interface RecheckOptions {
  report: string;
  adv: string;
  /** the diffusion bundle the run attacked (the report names it; an adapter fits only its own) */
  bundle?: string;
  adapter?: string;
  surrogate: string;
  threads: number;
  json: string;
}

const count = (f: number[]) => f.reduce((a, v) => a + v, 0);

export async function exactRecheck(o: RecheckOptions, argv: readonly string[]): Promise<void> {
  const rep: GpuReport = JSON.parse(await Deno.readTextFile(o.report));
  const model = await openDiffusion(o.bundle, o.threads);
  if (rep.bundle !== model.id) usageError(`${o.report} attacked ${rep.bundle}, not ${model.id}`);
  const surrogate = await openSurrogate(o.surrogate, o.threads);
  const lora = o.adapter ? await readAdapter(o.adapter, model.loraLayout) : undefined;
  const dc: DCSettings = settingsFor(model);
  const target = openTarget(
    { kind: "dc", bundle: model.id, adapter: o.adapter ?? null, settings: dc },
    modelSet(new Map([[model.id, model]]), new Map([[surrogate.id, surrogate]])),
    lora,
  );
  const split = rep.split === "validation"
    ? await loadTrainSplit(config.root, "validation")
    : await loadTest(config.root);
  const idx = seededSubset(split.n, rep.n, rep.seed);
  if (idx.some((v, i) => v !== rep.indices[i])) {
    usageError("the report's images are not this subset");
  }
  const set = gather(split, idx);
  const D = set.images.length / set.n;
  const adv = new Float32Array((await Deno.readFile(o.adv)).slice().buffer);
  const progress = new Progress("exact-recheck");
  const t0 = performance.now();
  const predict = async (x: Float32Array, m: number) => m ? await target.predict(x, m) : [];
  const right = (p: ArrayLike<number>, rows: number[]): number[] =>
    rows.map((s, k) => (p[k] === set.labels[s] ? 1 : 0));

  progress.log(`clean verdicts for ${set.n} images`);
  const all = Array.from({ length: set.n }, (_, i) => i);
  const clean = right(await predict(set.images, set.n), all);
  const cleanAgree = count(clean.map((v, i) => (v === rep.clean[i] ? 1 : 0)));

  const K = model.classNames.length;
  const cells = [];
  for (const cell of rep.cells) {
    if (adv.length < (cell.adv_offset_images + set.n) * D) usageError(`${o.adv} is too short`);
    const transfer = [];
    let robust = clean.slice();
    for (const t of TRANSFER) {
      const cfg = validateAttack({ ...t, norm: cell.norm, eps: cell.eps, seed: rep.seed }, K, 1e9);
      const x = (await runAttack(
        classifierOracle(surrogate),
        set.images,
        set.labels,
        cfg,
        model.imageShape,
      ))
        .xAdv;
      const live = all.filter((s) => robust[s]);
      const ok = right(await predict(gatherRows(x, live, D), live.length), live);
      live.forEach((s, k) => (robust[s] = ok[k]));
      transfer.push({
        name: `transfer ${t.attack}-${t.steps} (surrogate ${surrogate.id})`,
        robust: robust.slice(),
      });
    }
    const transferRobust = robust.slice();
    // the PyTorch run's broken images, re-checked by the TS engine
    const broken = all.filter((s) => rep.clean[s] && !cell.robust[s]);
    const x = gatherRows(
      adv.subarray(cell.adv_offset_images * D, (cell.adv_offset_images + set.n) * D),
      broken,
      D,
    );
    const okAdv = right(await predict(x, broken.length), broken);
    const disagreements = broken.filter((_, k) => okAdv[k]);
    // robust under the exact attack: right clean in both engines (the GPU run attacked only the
    // images it had right clean), and not broken there unless the TS engine disagrees
    const exactTs = clean.map((c, s) =>
      c && rep.clean[s] && !(broken.includes(s) && !disagreements.includes(s)) ? 1 : 0
    );
    robust = robust.map((r, s) => r & exactTs[s]);
    const k = count(robust);
    progress.log(
      `${cell.norm} ${cell.eps} ×${cell.budget_multiplier}: transfer ${
        count(transferRobust)
      }, exact ${count(exactTs)}, worst case ${k}/${set.n} (${disagreements.length} disagreements)`,
    );
    cells.push({
      norm: cell.norm,
      eps: cell.eps,
      budget_multiplier: cell.budget_multiplier,
      iterations: cell.iterations,
      attacks: cell.stages.map((s) => s.attack),
      complete_autoattack_standard: cell.complete,
      pytorch_robust_accuracy: cell.robust_accuracy,
      transfer: transfer.map((t) => ({ ...t, robust_accuracy: count(t.robust) / set.n })),
      exact_ts: {
        robust: exactTs,
        robust_accuracy: count(exactTs) / set.n,
        ci95: wilson(count(exactTs), set.n),
      },
      pytorch_broken: broken.length,
      disagreements,
      broken_only_by_transfer: all.filter((s) => clean[s] && !transferRobust[s] && exactTs[s]),
      worst_case: { robust, robust_accuracy: k / set.n, ci95: wilson(k, set.n) },
    });
  }
  await writeReport(o.json, {
    benchmark: "exact-recheck",
    what:
      "worst case per image over transfer and the exact AutoAttack (PyTorch, GPU), every verdict by the TS engine",
    mode: "white-box (fixed seed), exact estimator",
    command: `deno task cli bench exact-recheck ${argv.join(" ")}`,
    attack_run: {
      report: o.report,
      command: rep.command,
      machine: rep.machine,
      // what exact-report needs to join this run's budget levels, without its file at hand
      bundle: rep.bundle,
      adapter: rep.adapter,
      bookkeeping: rep.bookkeeping,
    },
    bundle: model.id,
    adapter: o.adapter ?? null,
    dc_settings: dc,
    split: rep.split,
    n: set.n,
    seed: rep.seed,
    clean: { robust: clean, accuracy: count(clean) / set.n, ci95: wilson(count(clean), set.n) },
    clean_agreement_with_pytorch: cleanAgree / set.n,
    cells,
    seconds: (performance.now() - t0) / 1000,
    machine: machine(),
  });
}

/** A tm-study state (LoRA, Adam's m and v) or a bare LoRA vector, told apart by its size. */
async function readAdapter(path: string, layout: readonly { shape: number[] }[]) {
  const bytes = await Deno.readFile(path);
  const floats = layout.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  return unpackState(bytes, layout, 0, bytes.length === 12 * floats).lora;
}
