/**
 * `deno task cli …`
 *   keys create [--name NAME]
 *   classify FILE… [--bundle DIR|NAME] [--settings JSON]          one JSON verdict per line
 *   bench classify --n N --seed S [--settings JSON] [--bundle …] [--json PATH|-]
 *
 * `classify` and `bench` run the engine in-process on a local bundle (no server needed).
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { config } from "./config.ts";
import { classifyImages, unetCalls } from "./lib/diffusion_classifier.ts";
import { gather, loadTest, seededSubset } from "./lib/fashion_mnist.ts";
import { decodeImage } from "./lib/image_decode.ts";
import { wilson } from "./lib/stats.ts";
import { loadBundle } from "./lib/bundle.ts";
import { Store } from "./store/kv_store.ts";
import { dirname } from "node:path";
import { OnnxClassifier } from "./gpu-worker/onnx_model.ts";
import type { ClassifierManifest } from "./lib/bundle_manifest.ts";
import { type AttackConfig, validateAttack } from "./lib/attacks/registry.ts";
import { classifierOracle, predictions } from "./lib/attacks/oracle.ts";
import { dcOracle, evenTimesteps } from "./lib/attacks/dc_oracle.ts";
import { evaluate } from "./lib/evaluation.ts";
import { autoAttack, resolveAttacks } from "./lib/attacks/autoattack.ts";
import { type Check, doublingStable, unboundedBudget } from "./lib/sanity.ts";
import { loadAdapter, machine, openDiffusion, settingsFor } from "./bench/common.ts";
import { robustnessTable } from "./bench/robustness_table.ts";
import { finetuneCommand } from "./bench/finetune.ts";
import { tmAblation, tmCurve } from "./bench/tm_report.ts";
import { tableMarkdown } from "./bench/table_markdown.ts";

function usage(msg?: string): never {
  if (msg) console.error(`error: ${msg}`);
  console.error(`usage:
  deno task cli keys create [--name NAME]
  deno task cli classify FILE... [--bundle DIR|NAME] [--settings JSON]
  deno task cli bench classify --n N --seed S [--settings JSON] [--bundle DIR|NAME] [--adapter ID] [--threads T] [--errors] [--json PATH|-]
  deno task cli finetune [--steps K] [--seed S] [--lr LR] [--batch B] [--warmup W] [--attack NAME|none] [--version V]
                         [--norm linf|l2] [--eps E] [--checkpoints 100,200,...] [--val-n N] [--resume RUN] [--json PATH|-]
  deno task cli bench table --mode transfer|adaptive [--n N] [--seed S] [--cells LIST] [--attack-timesteps T]
                         [--sanity-n M] [--rescore R [--rescore-cells K,…]] [--checkpoint DIR] [--json PATH|-]
  deno task cli bench tm-curve --finetune JSON [--adv DIR] [--cell KEY] [--n N] --json PATH [--svg PATH]
  deno task cli bench tm-ablation --base TABLE.json --tmdc TABLE.json [--folds 5] --json PATH
  deno task cli evaluate --attack fgsm|pgd|apgd-ce|apgd-dlr|apgd-t|fab|fab-t|square|autoattack --norm linf|l2 --eps E
                         --source surrogate|dc --target dc|surrogate --n N --seed S [--steps K] [--restarts R]
                         [--version standard|plus|rand] [--eot M] [--attack-timesteps T] [--noise fixed|fresh]
                         [--logit-scale S] [--settings JSON] [--rescore R] [--sanity [--sanity-n M]] [--json PATH|-]`);
  Deno.exit(2);
}

const [cmd, sub, ...rest] = Deno.args;
if (cmd === "keys" && sub === "create") {
  const { values } = parseArgs({
    args: rest,
    options: { name: { type: "string", default: "default" } },
  });
  if (!config.kvPath.startsWith("http")) {
    await Deno.mkdir(dirname(config.kvPath), { recursive: true });
  }
  const store = await Store.open(config.kvPath);
  const { key, record } = await store.createApiKey(values.name!);
  store.close();
  console.log(JSON.stringify({ key, id: record.id, name: record.name, kv: config.kvPath }));
} else if (cmd === "classify") {
  const { values, positionals } = parseArgs({
    args: [sub, ...rest].filter((a) => a !== undefined),
    allowPositionals: true,
    options: {
      bundle: { type: "string" },
      settings: { type: "string" },
      threads: { type: "string", default: "0" },
    },
  });
  if (positionals.length === 0) usage("no image files");
  const model = await openDiffusion(values.bundle, Number(values.threads));
  const s = settingsFor(model, values.settings);
  for (const file of positionals) {
    const d = await decodeImage(
      await Deno.readFile(file),
      model.imageShape,
      config.limits.maxImagePixels,
    );
    const t0 = performance.now();
    const [v] = await classifyImages(model, d.pixels, 1, s);
    console.log(JSON.stringify({
      file,
      label: v.label,
      className: model.classNames[v.label],
      posterior: Array.from(v.posterior),
      meanError: Array.from(v.meanError),
      stdError: Array.from(v.stdError),
      unetCalls: v.unetCalls,
      settings: s,
      bundle: model.id,
      decoder: d.decoder,
      conversion: d.conversion,
      ms: Math.round(performance.now() - t0),
    }));
  }
} else if (cmd === "bench" && sub === "classify") {
  const { values } = parseArgs({
    args: rest,
    options: {
      n: { type: "string", default: "1024" },
      seed: { type: "string", default: "0" },
      settings: { type: "string" },
      bundle: { type: "string" },
      threads: { type: "string", default: "0" },
      "batch-rows": { type: "string", default: "512" },
      json: { type: "string", default: "-" },
      errors: { type: "boolean", default: false },
      adapter: { type: "string" },
    },
  });
  const n = Number(values.n);
  const seed = Number(values.seed);
  if (!Number.isInteger(n) || n < 1 || n > 10000) usage("--n must be an integer in [1, 10000]");
  const model = await openDiffusion(values.bundle, Number(values.threads));
  const s = settingsFor(model, values.settings);
  const adapter = values.adapter ? await loadAdapter(values.adapter, model) : undefined;
  const test = await loadTest(config.root);
  const subset = gather(test, seededSubset(test.n, n, seed));
  const t0 = performance.now();
  let lastLog = 0;
  const verdicts = await classifyImages(model, subset.images, n, s, {
    batchRows: Number(values["batch-rows"]),
    lora: adapter?.lora,
    onProgress: (done, total) => {
      if (performance.now() - lastLog > 10_000) {
        lastLog = performance.now();
        console.error(
          `[bench] ${done}/${total} UNet calls (${((performance.now() - t0) / 1000).toFixed(0)} s)`,
        );
      }
    },
  });
  const seconds = (performance.now() - t0) / 1000;
  const correct = verdicts.filter((v, i) => v.label === subset.labels[i]).length;
  const [lo, hi] = wilson(correct, n);
  const out = {
    benchmark: "classify",
    what:
      "diffusion classifier, clean accuracy on a seeded Fashion-MNIST test subset (TypeScript engine, onnxruntime-node)",
    command: `deno task cli bench classify ${Deno.args.slice(2).join(" ")}`,
    n,
    seed,
    subset: "first n of lib/fashion_mnist.ts seededSubset(10000, n, seed)",
    correct,
    accuracy: correct / n,
    ci95: [lo, hi],
    unet_calls_per_image: unetCalls(s, model.classNames.length),
    unet_calls_total: verdicts.reduce((a, v) => a + v.unetCalls, 0),
    seconds,
    images_per_second: n / seconds,
    schedule: s,
    bundle: model.id,
    adapter: adapter
      ? { id: adapter.rec.id, step: adapter.rec.step, run: adapter.rec.jobId }
      : null,
    provider: model.provider,
    machine: machine(),
    labels: verdicts.map((v) => v.label),
    mean_errors: values.errors ? verdicts.map((v) => Array.from(v.meanError)) : undefined,
  };
  const text = JSON.stringify(out, null, 2);
  if (values.json === "-") console.log(text);
  else await Deno.writeTextFile(values.json!, text + "\n");
} else if (cmd === "bench" && sub === "autoattack") {
  // Spec §8 level 3: AutoAttack on the surrogate bundle, per-stage robust flags for the paired comparison.
  const { values } = parseArgs({
    args: rest,
    options: {
      bundle: { type: "string", default: join(config.modelsDir, "resnet14-fmnist") },
      n: { type: "string", default: "256" },
      seed: { type: "string", default: "0" },
      norm: { type: "string", default: "linf" },
      eps: { type: "string", default: String(8 / 255) },
      version: { type: "string", default: "standard" },
      threads: { type: "string", default: "0" },
      json: { type: "string", default: "-" },
    },
  });
  const b = await loadBundle(values.bundle!);
  if (b.manifest.kind !== "classifier") usage(`${values.bundle} is not a classifier bundle`);
  const c = new OnnxClassifier(b as typeof b & { manifest: ClassifierManifest }, {
    threads: Number(values.threads),
  });
  const test = await loadTest(config.root);
  const n = Number(values.n);
  const set = gather(test, seededSubset(test.n, n, Number(values.seed)));
  const t0 = performance.now();
  const r = await autoAttack(classifierOracle(c), set.images, set.labels, {
    norm: values.norm as "linf" | "l2",
    eps: Number(values.eps),
    version: values.version as "standard" | "plus" | "rand",
    seed: 0,
    shape: c.imageShape,
  });
  const order = r.perAttack.map((p) => p.attack);
  const stages = resolveAttacks({
    norm: "linf",
    eps: 0,
    version: values.version as "standard",
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
    command: `deno task cli bench autoattack ${rest.join(" ")}`,
    bundle: c.id,
    n,
    seed: Number(values.seed),
    norm: values.norm,
    eps: Number(values.eps),
    clean_accuracy: r.cleanAccuracy,
    clean: Array.from(r.cleanCorrect),
    stages,
    per_attack: r.perAttack,
    warnings: r.warnings,
    seconds: (performance.now() - t0) / 1000,
    machine: machine(),
  };
  const text = JSON.stringify(out);
  if (values.json === "-") console.log(text);
  else await Deno.writeTextFile(values.json!, text + "\n");
} else if (cmd === "bench" && sub === "tm-curve") {
  await tmCurve(rest);
} else if (cmd === "bench" && sub === "tm-ablation") {
  await tmAblation(rest);
} else if (cmd === "bench" && sub === "table-md") {
  await tableMarkdown(rest);
} else if (cmd === "bench" && sub === "table") {
  await robustnessTable(rest);
} else if (cmd === "finetune") {
  await finetuneCommand([sub, ...rest].filter((a) => a !== undefined));
} else if (cmd === "evaluate") {
  await evaluateCommand([sub, ...rest].filter((a) => a !== undefined));
} else {
  usage();
}

async function evaluateCommand(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      attack: { type: "string" },
      norm: { type: "string", default: "linf" },
      eps: { type: "string" },
      source: { type: "string", default: "surrogate" },
      target: { type: "string", default: "dc" },
      adapter: { type: "string" },
      n: { type: "string", default: "128" },
      seed: { type: "string", default: "0" },
      steps: { type: "string" },
      restarts: { type: "string" },
      version: { type: "string" },
      eot: { type: "string" },
      "attack-timesteps": { type: "string", default: "10" },
      noise: { type: "string", default: "fixed" },
      "logit-scale": { type: "string", default: "100" },
      settings: { type: "string" },
      rescore: { type: "string", default: "0" },
      bundle: { type: "string" },
      surrogate: { type: "string", default: join(config.modelsDir, "resnet14-fmnist") },
      threads: { type: "string", default: "0" },
      json: { type: "string", default: "-" },
      sanity: { type: "boolean", default: false },
      "sanity-n": { type: "string", default: "16" },
    },
  });
  if (!values.attack || values.eps === undefined) usage("evaluate needs --attack and --eps");

  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const threads = Number(values.threads);
  const model = await openDiffusion(values.bundle, threads);
  const sb = await loadBundle(values.surrogate!);
  if (sb.manifest.kind !== "classifier") usage(`${values.surrogate} is not a classifier bundle`);
  const surrogate = new OnnxClassifier(sb as typeof sb & { manifest: ClassifierManifest }, {
    threads,
  });
  const dcSettings = settingsFor(model, values.settings);
  const adapter = values.adapter ? await loadAdapter(values.adapter, model) : undefined;
  const K = model.classNames.length;
  let attack: AttackConfig;
  try {
    attack = validateAttack(
      {
        attack: values.attack!,
        norm: values.norm as "linf" | "l2",
        eps: Number(values.eps),
        steps: num(values.steps),
        restarts: num(values.restarts),
        eotIter: num(values.eot),
        version: values.version as AttackConfig["version"],
        seed: Number(values.seed),
      },
      K,
      100_000,
    );
  } catch (e) {
    usage((e as Error).message);
  }
  const test = await loadTest(config.root);
  const n = Number(values.n);
  const set = gather(test, seededSubset(test.n, n, Number(values.seed)));
  const timesteps = evenTimesteps(
    Number(values["attack-timesteps"]),
    dcSettings.tRange[0],
    dcSettings.tRange[1],
  );
  const dcSource = () =>
    dcOracle(model, {
      timesteps,
      error: dcSettings.error,
      scale: Number(values["logit-scale"]),
      noise: values.noise as "fixed" | "fresh",
      seed: dcSettings.seed,
      lora: adapter?.lora,
    });
  const source = values.source === "dc"
    ? {
      oracle: dcSource(),
      describe: {
        kind: "dc",
        bundle: model.id,
        timesteps,
        noise: values.noise,
        logit_scale: Number(values["logit-scale"]),
        error: dcSettings.error,
        note:
          "gradients through the Monte Carlo estimate over these timesteps and all classes (no elimination)",
      },
    }
    : {
      oracle: classifierOracle(surrogate),
      describe: { kind: "surrogate", bundle: surrogate.id },
    };
  const argmaxScorer = async (x: Float32Array, m: number) =>
    predictions(await surrogate.logits(x, m), m, K);
  const dcScorer = (seed: number) => async (x: Float32Array, m: number) =>
    Int32Array.from(
      (await classifyImages(model, x, m, { ...dcSettings, seed }, { lora: adapter?.lora })).map((
        v,
      ) => v.label),
    );
  const R = Number(values.rescore);
  const target = values.target === "dc"
    ? {
      score: dcScorer(dcSettings.seed),
      describe: {
        kind: "dc",
        bundle: model.id,
        adapter: adapter?.rec.id ?? null,
        settings: dcSettings,
        unet_calls_per_image: unetCalls(dcSettings, K),
      },
      rescore: R > 0
        ? async (x: Float32Array, m: number) => {
          const out: Int32Array[] = [];
          for (let r = 1; r <= R; r++) out.push(await dcScorer(dcSettings.seed + r)(x, m));
          return out;
        }
        : undefined,
    }
    : { score: argmaxScorer, describe: { kind: "surrogate", bundle: surrogate.id } };
  const mode = values.source === values.target
    ? (values.source === "dc" ? "adaptive" : "white-box")
    : "transfer";
  const r = await evaluate({
    images: set.images,
    labels: set.labels,
    shape: model.imageShape,
    attack: attack!,
    source,
    target,
    mode,
  });
  const { xAdv: _x, robustFlags, ...report } = r;
  let sanity: Check[] | undefined;
  if (values.sanity) {
    // Spec §7 checks on the first m images: an unbounded budget must reach 0%, and doubling
    // the attack's budget must not change per-point outcomes beyond a sign test's noise.
    const m = Math.min(n, Number(values["sanity-n"]));
    const sub = { images: set.images.subarray(0, m * 784), labels: set.labels.subarray(0, m) };
    const run = (a: AttackConfig) =>
      evaluate({ ...sub, shape: model.imageShape, attack: a, source, target, mode });
    const unbounded = await run({ ...attack!, eps: attack!.norm === "linf" ? 1 : Math.sqrt(784) });
    const doubled = await run({
      ...attack!,
      steps: (attack!.steps ?? 1) * 2,
      eotIter: (attack!.eotIter ?? 1) * 2,
    });
    sanity = [
      unboundedBudget(
        unbounded.robust_accuracy,
        0,
        attack!.norm === "linf" ? "Linf ε = 1" : "L2 ε = √784",
      ),
      doublingStable(robustFlags.subarray(0, m), doubled.robustFlags),
    ];
  }
  const out = {
    benchmark: "evaluate",
    command: `deno task cli evaluate ${args.join(" ")}`,
    seed: Number(values.seed),
    subset:
      "first n of lib/fashion_mnist.ts seededSubset(10000, n, seed), Fashion-MNIST test split",
    ...report,
    sanity,
    machine: machine(),
  };
  const text = JSON.stringify(out, null, 2);
  if (values.json === "-") console.log(text);
  else await Deno.writeTextFile(values.json!, text + "\n");
}
