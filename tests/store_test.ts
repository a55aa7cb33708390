/** store/: the job-kind index against a real KV file (listing, deletion, back-fill at start-up). */
import { join } from "node:path";
import { assertEquals } from "./assert.ts";
import { PAPER_SETTINGS } from "../lib/dc_settings.ts";
import type { FinetuneJobSpec } from "../lib/finetune_spec.ts";
import type { EvaluationSpec, Job, NewJob } from "../store/records.ts";
import { Store } from "../store/kv_store.ts";

const base = { owner: "test", bundle: "tiny-diffusion", adapter: null, settings: PAPER_SETTINGS };
const classify: NewJob = { ...base, kind: "classify" };
// The kind index never looks inside a spec; the evaluation-group index reads its target and
// images: a spec with only those stands in for one.
const spec = (bundle: string, n = 4) =>
  ({
    target: { kind: "classifier", bundle },
    dataset: { name: "fashion-mnist-test", n, seed: 0 },
  }) as unknown as EvaluationSpec;
const evaluate: NewJob = { ...base, kind: "evaluate", evaluation: spec("a") };
const finetune: NewJob = { ...base, kind: "finetune", finetune: {} as FinetuneJobSpec };

/** Run `fn` on a store in a fresh KV file; `restart()` closes it and opens the same file again. */
async function withStore(
  fn: (store: Store, restart: () => Promise<Store>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tmdc-store-" });
  const path = join(dir, "kv.sqlite");
  let store = await Store.open(path);
  const restart = async () => {
    store.close();
    return store = await Store.open(path);
  };
  try {
    await fn(store, restart);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

const ids = (jobs: Job[]) => jobs.map((j) => j.id);
/** Creation order as the index keeps it: jobs created in the same millisecond go by id. */
const oldestFirst = (jobs: Job[]) =>
  jobs.toSorted((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));

Deno.test("listJobs(kind) lists exactly the jobs of that kind, oldest first", async () => {
  await withStore(async (store) => {
    const made: Job[] = [];
    for (const fields of [classify, evaluate, finetune, classify, evaluate, classify]) {
      made.push(await store.createJob(fields, [{ shard: [0] }]));
    }
    for (const kind of ["classify", "evaluate", "finetune"] as const) {
      const listed = await store.listJobs(kind);
      assertEquals(listed, oldestFirst(made.filter((j) => j.kind === kind)));
    }
  });
});

Deno.test("listJobs reads past one getMany batch (more than 10 jobs of a kind)", async () => {
  await withStore(async (store) => {
    const made: Job[] = [];
    for (let k = 0; k < 23; k++) made.push(await store.createJob(classify, []));
    assertEquals(ids(await store.listJobs("classify")), ids(oldestFirst(made)));
    assertEquals(await store.listJobs("finetune"), []);
  });
});

Deno.test("deleteJob removes the job's index entry with it", async () => {
  await withStore(async (store) => {
    const a = await store.createJob(evaluate, [{ shard: [0, 1] }, { shard: [2] }]);
    const b = await store.createJob(evaluate, [{ shard: [3] }]);
    await store.deleteJob(a.id);
    assertEquals(ids(await store.listJobs("evaluate")), [b.id]);
    await store.deleteJob(b.id);
    assertEquals(await store.listJobs("evaluate"), []);
    assertEquals(await store.listKeysForDiagnostics(), [], "no index entry left behind");
  });
});

Deno.test("recover() back-fills the index of jobs stored before it existed, idempotently", async () => {
  await withStore(async (store, restart) => {
    const c = await store.createJob(classify, [{ shard: [0] }]);
    const e = await store.createJob(evaluate, [{ shard: [0] }]);
    const f = await store.createJob(finetune, [{ shard: [0] }]);
    const keysBefore = await store.listKeysForDiagnostics();
    await store.__testing.dropJobKindIndex();
    for (const kind of ["classify", "evaluate", "finetune"] as const) {
      assertEquals(await store.listJobs(kind), []);
    }

    const reopened = await restart();
    assertEquals(await reopened.recover(), []);
    assertEquals(ids(await reopened.listJobs("classify")), [c.id]);
    assertEquals(ids(await reopened.listJobs("evaluate")), [e.id]);
    assertEquals(ids(await reopened.listJobs("finetune")), [f.id]);
    assertEquals(await reopened.listKeysForDiagnostics(), keysBefore);
    assertEquals(await reopened.recover(), [], "a second start changes nothing");
    assertEquals(await reopened.listKeysForDiagnostics(), keysBefore);
  });
});

Deno.test("recover() drops a job interrupted while being created, index entry included", async () => {
  await withStore(async (store) => {
    const kept = await store.createJob(classify, [{ shard: [0] }]);
    const keysBefore = await store.listKeysForDiagnostics();
    const lost = await store.__testing.createInterruptedJob(classify, [{ shard: [0] }]);
    assertEquals(ids(await store.listJobs("classify")), ids(oldestFirst([kept, lost])));
    assertEquals(await store.recover(), [lost.id]);
    assertEquals(ids(await store.listJobs("classify")), [kept.id]);
    assertEquals(await store.listKeysForDiagnostics(), keysBefore);
  });
});

Deno.test("fair share: two keys that submit at once are served in turn, not first come first served", async () => {
  await withStore(async (store) => {
    const input = { shard: [0] };
    for (const owner of ["alice", "alice", "alice", "bob", "bob", "bob"]) {
      await store.createJob({ ...classify, owner }, [input]);
    }
    // one worker, one unit at a time, each finished before the next take
    const served: string[] = [];
    for (let k = 0; k < 6; k++) {
      const got = (await store.leaseNext("w", ["tiny-diffusion"], 60_000))!;
      served.push(got.job.owner);
      await store.failUnit(got.job.id, got.unit.idx, got.unit.lease!.token, "done with it");
    }
    assertEquals(served, ["alice", "bob", "alice", "bob", "alice", "bob"]);
    // with units in flight, the key holding fewer live leases goes first
    await store.createJob({ ...classify, owner: "alice" }, [input, input, input]);
    await store.createJob({ ...classify, owner: "bob" }, [input]);
    const first = (await store.leaseNext("w", ["tiny-diffusion"], 60_000))!;
    const second = (await store.leaseNext("w", ["tiny-diffusion"], 60_000))!;
    assertEquals(new Set([first.job.owner, second.job.owner]), new Set(["alice", "bob"]));
  });
});

Deno.test("evaluation groups: the same target on the same images, from the index; back-filled at start-up", async () => {
  await withStore(async (store, restart) => {
    const mk = (evaluation: EvaluationSpec) =>
      store.createJob({ ...base, kind: "evaluate", evaluation }, [{ shard: [0] }]);
    const a1 = await mk(spec("a"));
    const a2 = await mk(spec("a"));
    await mk(spec("b"));
    await mk(spec("a", 8)); // other images
    const group = async (s: Store) => ids(await s.listEvaluationGroup(spec("a"))).toSorted();
    assertEquals(await group(store), [a1.id, a2.id].toSorted());
    await store.__testing.dropEvalGroupIndex();
    assertEquals(await group(store), []);
    const again = await restart();
    await again.recover();
    assertEquals(await group(again), [a1.id, a2.id].toSorted());
    await again.deleteJob(a1.id);
    assertEquals(await group(again), [a2.id]);
  });
});

Deno.test("take reads the per-owner active index; recover() back-fills it for an older KV file", async () => {
  await withStore(async (store, restart) => {
    const job = await store.createJob({ ...classify, owner: "carol" }, [{ shard: [0] }]);
    await store.__testing.dropActiveByIndex();
    assertEquals(
      await store.leaseNext("w", ["tiny-diffusion"], 60_000),
      null,
      "not indexed: not seen",
    );
    const again = await restart();
    await again.recover();
    assertEquals((await again.leaseNext("w", ["tiny-diffusion"], 60_000))?.job.id, job.id);
  });
});
