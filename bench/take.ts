/**
 * `deno task cli bench take`: how long a worker's `take` (Store.leaseNext) takes as the queue
 * grows — jobs with work left from two keys in a fresh KV file, one lease timed at each size.
 */
import { Store } from "../store/kv_store.ts";
import { PAPER_SETTINGS } from "../lib/dc_settings.ts";
import { machine, writeReport } from "./common.ts";

export async function takeBench(o: { sizes: number[]; json: string }, argv: readonly string[]) {
  const dir = await Deno.makeTempDir({ prefix: "tmdc-take-" });
  const store = await Store.open(`${dir}/kv.sqlite`);
  const rows = [];
  try {
    let made = 0;
    for (const n of o.sizes.toSorted((a, b) => a - b)) {
      for (; made < n; made++) {
        const owner = made % 2 ? "key-a" : "key-b";
        await store.createJob(
          { kind: "classify", owner, bundle: "b", adapter: null, settings: PAPER_SETTINGS },
          [{ shard: [0] }],
        );
      }
      const t0 = performance.now();
      const got = await store.leaseNext("w", ["b"], 60_000);
      const ms = performance.now() - t0;
      if (!got) throw new Error("nothing leased");
      await store.failUnit(got.job.id, got.unit.idx, got.unit.lease!.token, "timed");
      made--; // that job has ended
      rows.push({ active_jobs: n, owners: 2, take_ms: ms });
    }
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
  await writeReport(o.json, {
    benchmark: "take",
    what: "one Store.leaseNext (a worker's take) as the number of jobs with work left grows",
    command: `deno task cli bench take ${argv.join(" ")}`,
    rows,
    machine: machine(),
  });
}
