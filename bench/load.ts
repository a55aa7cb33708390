/**
 * `deno task cli bench load`: the team deployment under load and faults, real processes on
 * 127.0.0.1 (a frontend and workers as separate Deno processes, a fresh KV file, the
 * deployment's models):
 *
 *   1. burst: key A submits `images` one-image classify jobs, then key B as many, before any
 *      worker is up; then the workers start while `readers` clients poll job status. Reported:
 *      status-read latency (p50/p99/max), units leased more than once, and fair share — how
 *      many of the first half of completions are B's (first come first served would give 0);
 *   2. worker faults: jobs run while a worker holding a lease is SIGKILLed and restarted
 *      `worker-kills` times in a row;
 *   3. frontend faults: the frontend is SIGKILLed and restarted `frontend-kills` times mid-job.
 *
 * After each phase: every job done, every image classified exactly once (one verdict per
 * unit, none failed), and after shutdown no spawned process left running.
 */
import { config } from "../config.ts";
import { encodePng } from "../lib/image_decode.ts";
import { loadTest } from "../lib/fashion_mnist.ts";
import type { Job } from "../store/records.ts";
import { Progress } from "../cli/progress.ts";
import { Cluster, waitFor } from "./cluster.ts";
import { machine, writeReport } from "./common.ts";

export interface LoadOptions {
  images: number;
  readers: number;
  workers: number;
  "worker-kills": number;
  "frontend-kills": number;
  json: string;
}

const quantile = (xs: number[], q: number) => {
  const s = xs.toSorted((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};

export async function loadBench(o: LoadOptions, argv: readonly string[]): Promise<void> {
  const log = new Progress("load");
  const t0 = performance.now();
  const test = await loadTest(config.root);
  const pngs = await Promise.all(
    Array.from(
      { length: Math.max(o.images, 40) },
      (_, i) =>
        encodePng(test.images.subarray(i * 784, (i + 1) * 784), {
          channels: 1,
          height: 28,
          width: 28,
        }),
    ),
  );
  const c = await Cluster.create(config.modelsDir, config.defaultBundle, {
    TMDC_LEASE_MS: "2000",
    TMDC_HEARTBEAT_MS: "400",
    TMDC_WORKER_THREADS: "1",
    TMDC_ACCESS_LOG: "0",
    TMDC_QUOTA_ACTIVE_JOBS: "0",
  });
  const spawned: Deno.ChildProcess[] = [];
  const startWorker = (id: string) => {
    c.startWorker(id);
    spawned.push(c.workers.get(id)!);
  };
  try {
    await c.startFrontend();
    spawned.push(c.frontend!);
    const [keyA, keyB] = [await c.apiKey("A"), await c.apiKey("B")];
    const submit = async (key: string, i: number) => {
      const fd = new FormData();
      fd.append(
        "image",
        new Blob([pngs[i % pngs.length].slice()], { type: "image/png" }),
        `${i}.png`,
      );
      const r = await fetch(`${c.url}/v1/classify?wait=false`, {
        method: "POST",
        body: fd,
        headers: { authorization: `Bearer ${key}` },
      });
      if (r.status !== 202) throw new Error(`submit: ${r.status} ${await r.text()}`);
      return (await r.json()).job.id as string;
    };
    const settled = async (ids: string[], what: string, ms = 600_000) => {
      const store = await c.openStore();
      try {
        return await waitFor(
          async () => {
            const jobs = await Promise.all(ids.map((id) => store.getJob(id)));
            return jobs.every((j) => j && (j.status === "done" || j.status === "failed"))
              ? jobs as Job[]
              : undefined;
          },
          what,
          ms,
        );
      } finally {
        store.close();
      }
    };
    /** every job done, one verdict per unit, how many units were leased more than once */
    const audit = async (ids: string[]) => {
      const store = await c.openStore();
      try {
        let exactlyOnce = true;
        let releasedUnits = 0;
        let failed = 0;
        for (const id of ids) {
          const job = (await store.getJob(id))!;
          const units = await store.listUnits(id);
          const verdicts = await store.listVerdicts(id);
          failed += job.failed;
          releasedUnits += units.filter((u) => u.attempts > 1).length;
          if (job.status !== "done" || verdicts.length !== units.length) exactlyOnce = false;
          if (new Set(verdicts.map((v) => v.index)).size !== verdicts.length) exactlyOnce = false;
        }
        return {
          jobs: ids.length,
          exactly_once: exactlyOnce,
          failed,
          units_leased_again: releasedUnits,
        };
      } finally {
        store.close();
      }
    };

    // ---- 1. burst, fair share, status reads under load ----
    log.log(`burst: ${o.images} jobs of key A, then ${o.images} of key B, ${o.readers} readers`);
    const aIds = await Promise.all(Array.from({ length: o.images }, (_, i) => submit(keyA, i)));
    const bIds = await Promise.all(Array.from({ length: o.images }, (_, i) => submit(keyB, i)));
    const all = [...aIds, ...bIds];
    const latencies: number[] = [];
    let reading = true;
    const readers = Array.from({ length: o.readers }, async (_, r) => {
      for (let k = r; reading; k++) {
        const t = performance.now();
        const res = await fetch(`${c.url}/v1/jobs/${all[k % all.length]}`, {
          headers: { authorization: `Bearer ${keyA}` },
        });
        await res.body?.cancel();
        latencies.push(performance.now() - t);
      }
    });
    const tBurst = performance.now();
    for (let w = 0; w < o.workers; w++) startWorker(`w${w}`);
    const jobs = await settled(all, "the burst");
    const burstS = (performance.now() - tBurst) / 1000;
    reading = false;
    await Promise.all(readers);
    const order = jobs.toSorted((a, b) => a.finishedAt!.localeCompare(b.finishedAt!));
    const firstHalf = order.slice(0, o.images);
    const burst = {
      ...(await audit(all)),
      seconds: burstS,
      status_reads: {
        n: latencies.length,
        p50_ms: quantile(latencies, 0.5),
        p99_ms: quantile(latencies, 0.99),
        max_ms: Math.max(...latencies),
      },
      fair_share: {
        what:
          `of the first ${o.images} jobs to finish, how many are key B's (submitted after all of A's)`,
        key_b_in_first_half: firstHalf.filter((j) => bIds.includes(j.id)).length,
        first_come_first_served_would_give: 0,
      },
    };
    log.log(`burst: ${JSON.stringify(burst)}`);

    // ---- 2. worker SIGKILLed mid-job, again and again ----
    log.log(`worker faults: ${o["worker-kills"]} SIGKILLs`);
    const wIds = await Promise.all(Array.from({ length: 40 }, (_, i) => submit(keyA, i)));
    let workerKills = 0;
    const killedUnits = new Set<string>();
    const store = await c.openStore();
    try {
      for (let k = 0; k < o["worker-kills"]; k++) {
        // a worker holding a lease on a unit not hit before (three losses would fail it)
        const target = await waitFor(
          async () => {
            for (const id of wIds) {
              for (const u of await store.listUnits(id)) {
                const key = `${id}/${u.idx}`;
                if (u.status === "leased" && u.attempts === 1 && !killedUnits.has(key)) {
                  killedUnits.add(key);
                  return u.lease!.worker;
                }
              }
            }
            return undefined;
          },
          "a leased unit",
          60_000,
        ).catch(() => undefined);
        if (!target || !c.workers.has(target)) break;
        await c.killWorker(target);
        workerKills++;
        startWorker(target);
        await c.waitForWorker(target);
      }
    } finally {
      store.close();
    }
    await settled(wIds, "the jobs under worker faults");
    const workerPhase = { kills: workerKills, ...(await audit(wIds)) };
    log.log(`worker faults: ${JSON.stringify(workerPhase)}`);

    // ---- 3. frontend SIGKILLed mid-job ----
    log.log(`frontend faults: ${o["frontend-kills"]} SIGKILLs`);
    const fIds = await Promise.all(Array.from({ length: 40 }, (_, i) => submit(keyB, i)));
    let frontendKills = 0;
    for (let k = 0; k < o["frontend-kills"]; k++) {
      await new Promise((r) => setTimeout(r, 700));
      await c.stopFrontend();
      frontendKills++;
      await c.startFrontend();
      spawned.push(c.frontend!);
    }
    await settled(fIds, "the jobs under frontend faults");
    const frontendPhase = { kills: frontendKills, ...(await audit(fIds)) };
    log.log(`frontend faults: ${JSON.stringify(frontendPhase)}`);

    await c.shutdown();
    const statuses = await Promise.all(
      spawned.map((p) => Promise.race([p.status.then(() => "exited"), delay(5000, "running")])),
    );
    await writeReport(o.json, {
      benchmark: "load",
      what:
        "a team deployment under load and faults: real frontend and worker processes on 127.0.0.1",
      command: `deno task cli bench load ${argv.join(" ")}`,
      bundle: config.defaultBundle,
      workers: o.workers,
      lease_ms: 2000,
      heartbeat_ms: 400,
      burst,
      worker_faults: workerPhase,
      frontend_faults: frontendPhase,
      orphaned_processes: statuses.filter((s) => s === "running").length,
      seconds: (performance.now() - t0) / 1000,
      machine: machine(),
    });
  } finally {
    await c.shutdown().catch(() => {});
  }
}

const delay = <T>(ms: number, v: T) => new Promise<T>((r) => setTimeout(() => r(v), ms));
