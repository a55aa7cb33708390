/**
 * One evaluation engine, one report: the service's evaluation job, the CLI's `evaluate` and a
 * `bench table` cell run the same spec (FGSM Linf 0.05 made on the tiny surrogate, scored on the
 * tiny DC, 4 seeded test images) and must answer with the same report shape and the same figures.
 * Real processes: a frontend and a worker, and the CLI as a subprocess.
 */
import { join } from "node:path";
import { assertEquals } from "./assert.ts";
import { clusterTest, waitFor } from "./cluster.ts";
import { runCli } from "./helpers.ts";
import { FAST_SETTINGS } from "./service_helpers.ts";

/** The structure of a JSON value: keys and value types, not the values. */
function shape(v: unknown): unknown {
  if (v === null) return "null";
  if (Array.isArray(v)) return v.length ? ["array", shape(v[0])] : ["array"];
  if (typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v as object).sort().map((k) => [k, shape((v as Record<string, unknown>)[k])]),
    );
  }
  return typeof v;
}

async function cli(env: Record<string, string>, ...args: string[]): Promise<unknown> {
  const r = await runCli(args, { env });
  if (r.code !== 0) throw new Error(`cli ${args.join(" ")} failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout);
}

clusterTest(
  "the service's evaluation, the CLI's evaluate and a bench table cell give one report shape and the same figures",
  async (c, key) => {
    c.startWorker("w1");
    const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    const r = await fetch(`${c.url}/v1/evaluations`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({
        target: { settings: FAST_SETTINGS },
        source: { kind: "surrogate", bundle: "resnet8-fmnist" },
        attack: { attack: "fgsm", norm: "linf", eps: 0.05 },
        dataset: { name: "fashion-mnist-test", n: 4, seed: 0 },
        shardSize: 2,
      }),
    });
    assertEquals(r.status, 202);
    const url = c.url + r.headers.get("location");
    const service = await waitFor(
      async () => {
        const b = await (await fetch(url, { headers: auth })).json();
        return b.report?.complete ? b.report : undefined;
      },
      "the evaluation to finish",
      120_000,
    );

    const models = c.env.TMDC_MODELS_DIR;
    const common = [
      "--bundle",
      join(models, "tiny-diffusion"),
      "--surrogate",
      join(models, "tiny-surrogate"),
      "--settings",
      JSON.stringify(FAST_SETTINGS),
      "--n",
      "4",
      "--seed",
      "0",
      "--json",
      "-",
    ];
    const evaluate = await cli(
      c.env,
      "evaluate",
      "--attack",
      "fgsm",
      "--norm",
      "linf",
      "--eps",
      "0.05",
      ...common,
    ) as Record<string, unknown>;
    const checkpoint = await Deno.makeTempDir({ prefix: "tmdc-table-" });
    const table = await cli(
      c.env,
      "bench",
      "table",
      "--mode",
      "transfer",
      "--cells",
      "fgsm@linf:0.05",
      "--sanity-n",
      "2",
      "--checkpoint",
      checkpoint,
      ...common,
    ) as { cells: { report: Record<string, unknown> }[] };
    const cell = table.cells[0].report;

    // the CLI adds what a benchmark record carries (command, machine, timings) around the report
    const reportKeys = Object.keys(service).sort();
    const pick = (o: Record<string, unknown>) =>
      Object.fromEntries(reportKeys.map((k) => [k, o[k]]));
    for (const [name, rep] of [["evaluate", pick(evaluate)], ["bench table", cell]] as const) {
      assertEquals(Object.keys(rep).sort(), reportKeys, `${name}: report keys`);
      for (
        const k of [
          "mode",
          "n",
          "clean_accuracy",
          "robust_accuracy",
          "attack",
          "source",
          "target",
          "dataset",
          "adversarial_set",
        ]
      ) {
        assertEquals(rep[k], service[k], `${name}: ${k}`);
      }
      // checks and intervals have the same structure (values of timings and checks may differ)
      for (const k of ["ci95", "clean_ci95", "per_attack_on_source", "rescored_with_fresh_noise"]) {
        assertEquals(shape(rep[k]), shape(service[k]), `${name}: shape of ${k}`);
      }
      assertEquals(
        shape((rep.sanity as unknown[])[0]),
        shape(service.sanity[0]),
        `${name}: a check`,
      );
    }
  },
);
