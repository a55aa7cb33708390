/**
 * The dispatcher against scripted workers: a real Store (KV file), the tiny bundles' registry,
 * real WebSockets (Deno.serve in this process) and workers that are plain sockets speaking the
 * protocol, so each rule can be driven exactly: the hello deadline, capacity, wake, dispatch
 * errors and result checks. Real worker processes are in tests/cluster_load_test.ts.
 */
import { join } from "node:path";
import { assert_, assertEquals } from "./assert.ts";
import { tinyModelsDir } from "./service_helpers.ts";
import { Dispatcher } from "../service/dispatcher.ts";
import { Registry } from "../service/registry.ts";
import { Store } from "../store/kv_store.ts";
import type { Job } from "../store/records.ts";
import { defaultSettings } from "../lib/dc_settings.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import { validateAttack } from "../lib/attacks/registry.ts";
import { loadTest } from "../lib/fashion_mnist.ts";
import { config } from "../config.ts";
import {
  FrontendMessage,
  type FrontendUnit,
  toBase64,
  type UnitRef,
  type WorkerMessage,
} from "../gpu-worker/protocol.ts";

const TOKEN = "dispatcher-test-token";
const DC = "tiny-diffusion@1.0.0";
const SURROGATE = "resnet8-fmnist@1.0.0";
const K = 10;
const D = 28 * 28;

/** A worker that is only a socket: it says what the test tells it and records what it hears. */
class ScriptedWorker {
  readonly inbox: FrontendMessage[] = [];
  #waiting: (() => void)[] = [];
  closed: Promise<CloseEvent>;

  constructor(readonly ws: WebSocket) {
    ws.onmessage = (ev) => {
      this.inbox.push(FrontendMessage.parse(JSON.parse(String(ev.data))));
      for (const f of this.#waiting.splice(0)) f();
    };
    this.closed = new Promise((resolve) => ws.addEventListener("close", resolve));
  }

  static async connect(url: string): Promise<ScriptedWorker> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    return new ScriptedWorker(ws);
  }

  send(m: WorkerMessage | Record<string, unknown>): void {
    this.ws.send(JSON.stringify(m));
  }

  /** The next message (within `ms`), or undefined. */
  async next(ms = 2000): Promise<FrontendMessage | undefined> {
    const end = Date.now() + ms;
    while (this.inbox.length === 0 && Date.now() < end) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, end - Date.now());
        this.#waiting.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.inbox.shift();
  }

  async hello(id: string, capacity: number): Promise<void> {
    this.send({
      type: "hello",
      token: TOKEN,
      worker: { id, bundles: [DC, SURROGATE], provider: "cpu", threads: 1, version: "t", capacity },
    });
    assertEquals((await this.next())?.type, "welcome");
  }

  /** take → the unit handed out (or `none`). */
  async take(): Promise<FrontendUnit | "none"> {
    this.send({ type: "take" });
    const m = await this.next();
    if (m?.type === "none") return "none";
    assertEquals(m?.type, "unit");
    return m as FrontendUnit;
  }

  close(): void {
    this.ws.close();
  }
}

async function setup(helloTimeoutMs = 5000) {
  const dir = await Deno.makeTempDir({ prefix: "tmdc-dispatch-" });
  const store = await Store.open(join(dir, "kv.sqlite"));
  const registry = await Registry.scan(await tinyModelsDir());
  const dispatcher = new Dispatcher(store, registry, {
    workerToken: TOKEN,
    leaseMs: 60_000,
    heartbeatMs: 1000,
    helloTimeoutMs,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    dispatcher.accept(socket);
    return response;
  });
  const url = `ws://127.0.0.1:${server.addr.port}/`;
  const manifest = registry.bundles.get(DC)!.manifest as DiffusionManifest;
  const settings = defaultSettings(manifest);
  /** a classify job of `units` blank 28×28 images */
  const classifyJob = (adapter: string | null = null, units = 1) =>
    store.createJob(
      { kind: "classify", owner: "o", bundle: DC, adapter, settings },
      Array.from({ length: units }, () => ({
        pixels: new Uint8Array(D * 4),
        input: {
          name: "x.png",
          source: { format: "png", width: 28, height: 28, channels: 1 },
          conversion: [],
          decoder: "test",
        },
      })),
    );
  /** a transfer evaluation (FGSM, Linf 0.05) of one shard of Fashion-MNIST test indices */
  const attack = validateAttack({ attack: "fgsm", norm: "linf", eps: 0.05, seed: 0 }, K, 1e6);
  const evalJob = (shard: number[], setKey: string = crypto.randomUUID()) =>
    store.createJob({
      kind: "evaluate",
      owner: "o",
      bundle: DC,
      adapter: null,
      settings,
      evaluation: {
        attack,
        source: { kind: "surrogate", bundle: SURROGATE },
        target: { kind: "dc", bundle: DC, adapter: null, settings },
        dataset: { name: "fashion-mnist-test", n: shard.length, seed: 0 },
        setKey,
        mode: "transfer",
      },
    }, [{ shard }]);
  const workers: ScriptedWorker[] = [];
  return {
    store,
    registry,
    dispatcher,
    settings,
    classifyJob,
    evalJob,
    connect: async () => {
      const w = await ScriptedWorker.connect(url);
      workers.push(w);
      return w;
    },
    async close() {
      for (const w of workers) w.close();
      await server.shutdown();
      store.close();
    },
  };
}

type Setup = Awaited<ReturnType<typeof setup>>;

function test(name: string, fn: (s: Setup) => Promise<void>, helloTimeoutMs?: number): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const s = await setup(helloTimeoutMs);
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    },
  });
}

const ref = (u: UnitRef): UnitRef => ({ jobId: u.jobId, idx: u.idx, token: u.token });

/** `clean` moved by ±delta per pixel (clamped to [0, 1]): inside an Linf ball of radius delta. */
function nudged(clean: Float32Array, delta: number): Float32Array {
  return clean.map((v, i) => Math.min(1, Math.max(0, v + (i % 2 ? delta : -delta))));
}

/** A result an honest worker could send: a distribution peaked at `label`, means = sums / counts. */
function classifyResult(u: UnitRef, label: number) {
  const k = Array.from({ length: K }, () => 0.1);
  const posterior = k.map((_, c) => (c === label ? 0.91 : 0.01));
  return {
    type: "result" as const,
    kind: "classify" as const,
    ...ref(u),
    label,
    errorSum: k.map(() => 0.4),
    errorSumSq: k,
    count: k.map(() => 4),
    posterior,
    meanError: k,
    stdError: k,
    unetCalls: 40,
    survivors: [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]],
    stop: "stages",
    computeMs: 1,
    provider: "cpu",
  };
}

const inFlight = (s: Setup, id: string) =>
  s.dispatcher.summary().find((w) => w.id === id)?.unitsInFlight;

async function settled(s: Setup, jobId: string): Promise<Job> {
  for (let i = 0; i < 100; i++) {
    const j = (await s.store.getJob(jobId))!;
    if (j.status === "done" || j.status === "failed") return j;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`job ${jobId} did not finish`);
}

test("dispatcher: a socket that never says hello is closed at the deadline", async (s) => {
  const t0 = Date.now();
  const silent = await s.connect();
  const ev = await silent.closed;
  const ms = Date.now() - t0;
  assertEquals(ev.code, 4408);
  assert_(ms >= 250 && ms < 2000, `closed after ${ms} ms (deadline 300 ms)`);
  assertEquals(s.dispatcher.peers.size, 0);
  // a worker that does say hello in time stays
  const w = await s.connect();
  await w.hello("w", 1);
  await new Promise((r) => setTimeout(r, 500));
  assertEquals(s.dispatcher.peers.size, 1);
}, 300);

test("dispatcher: never more leases than capacity; wake only to free peers, once", async (s) => {
  const a = await s.classifyJob();
  const b = await s.classifyJob();
  const w = await s.connect();
  await w.hello("w", 1);

  s.dispatcher.wake();
  s.dispatcher.wake(); // not re-sent while the first is unanswered
  assertEquals((await w.next())?.type, "wake");
  assertEquals(await w.next(300), undefined);

  const u1 = await w.take();
  assert_(u1 !== "none" && u1.jobId === a.id, "the oldest job's unit first");
  assertEquals(inFlight(s, "w"), 1);
  // beyond capacity: none, though b's unit is queued
  assertEquals(await w.take(), "none");
  s.dispatcher.wake(); // a full peer is not woken
  assertEquals(await w.next(300), undefined);

  w.send(classifyResult(u1 as UnitRef, 3));
  assertEquals((await settled(s, a.id)).status, "done");
  assertEquals(inFlight(s, "w"), 0);
  const u2 = await w.take();
  assert_(u2 !== "none" && u2.jobId === b.id, "the slot freed by the result takes b");

  // capacity 2: two units at once, the third take is refused
  const c = await s.classifyJob();
  const d = await s.classifyJob();
  const e = await s.classifyJob();
  const w2 = await s.connect();
  await w2.hello("w2", 2);
  const got = [await w2.take(), await w2.take(), await w2.take()];
  assertEquals(got.map((u) => u === "none" ? "none" : u.jobId), [c.id, d.id, "none"]);
  assertEquals(inFlight(s, "w2"), 2);
  assertEquals((await s.store.getJob(e.id))!.status, "queued");
});

test("dispatcher: a unit that cannot be dispatched fails, its slot is freed, the next is handed out", async (s) => {
  // planted: a classify job whose image blob is gone, one whose adapter does not exist
  const noBlob = await s.classifyJob();
  const [unit] = await s.store.listUnits(noBlob.id);
  await s.store.deleteBlob(unit.input!.blob);
  const noAdapter = await s.classifyJob("no-such-adapter");
  const good = await s.classifyJob();

  const w = await s.connect();
  await w.hello("w", 1);
  const u = await w.take();
  assert_(u !== "none" && u.jobId === good.id, "the take is answered with the good job's unit");
  assertEquals(inFlight(s, "w"), 1);
  for (const j of [noBlob, noAdapter]) {
    const job = await settled(s, j.id);
    assertEquals(job.status, "failed");
    const [failed] = await s.store.listUnits(j.id);
    assert_(/could not be dispatched/.test(failed.error ?? ""), failed.error);
    assertEquals(failed.attempts, 1);
  }
  w.send(classifyResult(u as UnitRef, 1));
  assertEquals((await settled(s, good.id)).status, "done");
  assertEquals(inFlight(s, "w"), 0);
});

test("dispatcher: results that do not fit their unit are rejected and free the slot", async (s) => {
  const w = await s.connect();
  await w.hello("w", 1);

  // a label outside the bundle's classes
  const bad = await s.classifyJob();
  const u = await w.take() as FrontendUnit;
  w.send(classifyResult(u, K));
  assertEquals((await settled(s, bad.id)).status, "failed");
  assert_(/rejected.*label/.test((await s.store.listUnits(bad.id))[0].error ?? ""));
  assertEquals(inFlight(s, "w"), 0);

  // a malformed result (zod refuses it) for a unit the worker holds
  const bad2 = await s.classifyJob();
  const u2 = await w.take() as FrontendUnit;
  w.send({ ...classifyResult(u2, 1), label: "one" });
  assertEquals((await w.next())?.type, "error");
  assertEquals((await settled(s, bad2.id)).status, "failed");
  assertEquals(inFlight(s, "w"), 0);

  // evaluation shards: the items must be the shard's indices, the examples whole images
  const test = await loadTest(config.root);
  const item = (index: number, bytes = D * 4) => ({
    index,
    label: test.labels[index],
    cleanPred: 1,
    advPred: 2,
    dist: 0.05,
    adv: toBase64(
      new Uint8Array(nudged(test.images.subarray(index * D, (index + 1) * D), 0.04).buffer)
        .subarray(0, bytes),
    ),
  });
  const result = (u: UnitRef, items: ReturnType<typeof item>[]) => ({
    type: "result" as const,
    kind: "evaluation" as const,
    ...ref(u),
    items,
    computeMs: 1,
    provider: "cpu",
  });
  for (
    const [items, why] of [
      [[item(7), item(3)], /indices/],
      [[item(7), item(5), item(3)], /indices/],
      [[item(7), item(3, D * 4 - 4), item(5)], /bytes/],
    ] as const
  ) {
    const j = await s.evalJob([7, 3, 5]);
    const ev = await w.take() as FrontendUnit;
    assertEquals(ev.kind, "evaluation");
    w.send(result(ev, [...items]));
    assertEquals((await settled(s, j.id)).status, "failed");
    const err = (await s.store.listUnits(j.id))[0].error ?? "";
    assert_(why.test(err), err);
    assertEquals(inFlight(s, "w"), 0);
  }
  // the same shard, right: stored, and its examples kept for other targets
  const ok = await s.evalJob([7, 3, 5]);
  const ev = await w.take() as FrontendUnit;
  w.send(result(ev, [item(7), item(3), item(5)]));
  assertEquals((await settled(s, ok.id)).status, "done");
  assertEquals((await s.store.listEvalResults(ok.id))[0].items.map((i) => i.index), [7, 3, 5]);

  // a result of the wrong kind for its job
  const c = await s.classifyJob();
  const cu = await w.take() as FrontendUnit;
  w.send({ ...result(cu, []), kind: "evaluation" });
  assertEquals((await settled(s, c.id)).status, "failed");
  assertEquals(inFlight(s, "w"), 0);
});

test("dispatcher: a stale token changes nothing; a lost worker's slot goes with it", async (s) => {
  const j = await s.classifyJob();
  const w = await s.connect();
  await w.hello("w", 1);
  const u = await w.take() as FrontendUnit;
  w.send(classifyResult({ ...u, token: "not-the-lease" }, 1));
  w.send({ type: "heartbeat", ...ref(u), progress: { calls: 5, total: 40 } });
  await new Promise((r) => setTimeout(r, 200));
  const [unit] = await s.store.listUnits(j.id);
  assertEquals([unit.status, unit.progress], ["leased", { calls: 5, total: 40 }]);
  assertEquals(inFlight(s, "w"), 1);
  w.close();
  await w.closed;
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(s.dispatcher.peers.size, 0);
});

test("dispatcher: a repeated hello (the worker says it until welcomed) changes nothing", async (s) => {
  await s.classifyJob();
  await s.classifyJob();
  const w = await s.connect();
  await w.hello("w", 1);
  const u = await w.take();
  assert_(u !== "none", "a unit");
  w.send({
    type: "hello",
    token: TOKEN,
    worker: { id: "w2", bundles: [DC], provider: "cpu", threads: 1, version: "t", capacity: 4 },
  });
  assertEquals(await w.next(300), undefined, "no second welcome");
  assertEquals(s.dispatcher.peers.size, 1);
  assertEquals(s.dispatcher.summary().map((p) => [p.id, p.capacity, p.unitsInFlight]), [[
    "w",
    1,
    1,
  ]]);
  assertEquals(await w.take(), "none", "still one slot, still held");
});

test("dispatcher: a hostile worker's forgeries are refused and reach nothing", async (s) => {
  // markup in what a worker says about itself: the hello is refused
  const evil = await s.connect();
  evil.send({
    type: "hello",
    token: TOKEN,
    worker: {
      id: "w",
      bundles: [DC],
      provider: '<img src=x onerror="alert(1)">',
      threads: 1,
      version: "t",
      capacity: 1,
    },
  });
  assertEquals((await evil.next())?.type, "error");
  assertEquals(s.dispatcher.summary().length, 0);

  const w = await s.connect();
  await w.hello("w", 1);
  // verdicts no classifier could give
  const forged: [Record<string, unknown>, RegExp][] = [
    [{ posterior: Array(K).fill(0.5) }, /sums to/],
    [{ count: Array(K).fill(0) }, /never scored|sum \/ count/],
    [{ meanError: Array(K).fill(0.2) }, /sum \/ count/],
    [{ survivors: [[0, 2]] }, /survivors/],
  ];
  for (const [patch, why] of forged) {
    const j = await s.classifyJob();
    const u = await w.take() as FrontendUnit;
    w.send({ ...classifyResult(u, 1), ...patch });
    assertEquals((await settled(s, j.id)).status, "failed");
    const err = (await s.store.listUnits(j.id))[0].error ?? "";
    assert_(why.test(err), err);
  }
  // progress beyond its total is refused; the unit keeps what it had
  const pj = await s.classifyJob();
  const pu = await w.take() as FrontendUnit;
  w.send({ type: "heartbeat", ...ref(pu), progress: { calls: 1e15, total: 1 } });
  assertEquals((await w.next())?.type, "error");
  assertEquals((await s.store.listUnits(pj.id))[0].progress, null);
  w.send(classifyResult(pu, 1));
  assertEquals((await settled(s, pj.id)).status, "done");

  // adversarial examples that no Linf 0.05 attack could make, and a wrong label
  const test = await loadTest(config.root);
  const clean = (i: number) => test.images.subarray(i * D, (i + 1) * D);
  const nan = nudged(clean(7), 0.01);
  nan[5] = NaN;
  const cases: [Float32Array, number, RegExp][] = [
    [new Float32Array(D), test.labels[7], /distance/], // the all-zero image
    [nudged(clean(7), 0.2), test.labels[7], /distance/],
    [nan, test.labels[7], /finite/],
    [nudged(clean(7), 0.01).map((v) => v + 2), test.labels[7], /outside/],
    [nudged(clean(7), 0.01), (test.labels[7] + 1) % K, /labelled/],
  ];
  for (const [adv, label, why] of cases) {
    const setKey = crypto.randomUUID();
    const j = await s.evalJob([7], setKey);
    const u = await w.take() as FrontendUnit;
    w.send({
      type: "result",
      kind: "evaluation",
      ...ref(u),
      items: [{
        index: 7,
        label,
        cleanPred: label,
        advPred: 0,
        dist: 0,
        adv: toBase64(new Uint8Array(adv.buffer)),
      }],
      computeMs: 1,
      provider: "cpu",
    });
    assertEquals((await settled(s, j.id)).status, "failed");
    const err = (await s.store.listUnits(j.id))[0].error ?? "";
    assert_(why.test(err), err);
    assertEquals(await s.store.getAdversarial(setKey, 7), null, "nothing joins the shared set");
  }
  // an honest example is stored with the distance the frontend measured, not the worker's claim
  const setKey = crypto.randomUUID();
  const ok = await s.evalJob([7], setKey);
  const u = await w.take() as FrontendUnit;
  const adv = nudged(clean(7), 0.03);
  w.send({
    type: "result",
    kind: "evaluation",
    ...ref(u),
    items: [{
      index: 7,
      label: test.labels[7],
      cleanPred: 0,
      advPred: 0,
      dist: 0,
      adv: toBase64(new Uint8Array(adv.buffer)),
    }],
    computeMs: 1,
    provider: "cpu",
  });
  assertEquals((await settled(s, ok.id)).status, "done");
  const [res] = await s.store.listEvalResults(ok.id);
  assert_(Math.abs(res.items[0].dist! - 0.03) < 1e-6, `dist ${res.items[0].dist}`);
  assert_(await s.store.getAdversarial(setKey, 7) !== null);
});

test("dispatcher: a cancelled job's running unit is told to stop at its heartbeat; nothing after counts", async (s) => {
  const w = await s.connect();
  await w.hello("w", 1);
  const j = await s.classifyJob(null, 2);

  const u = await w.take() as FrontendUnit;
  const cancelled = await s.store.cancelJob(j.id, "admin-key");
  assert_(cancelled !== null && cancelled !== "finished");
  assertEquals(cancelled.status, "cancelled");
  assertEquals(await s.store.cancelJob(j.id, "admin-key"), "finished");
  w.send({ type: "heartbeat", ...ref(u), progress: { calls: 1, total: 4 } });
  const m = await w.next();
  assertEquals(m?.type, "cancel");
  assertEquals(m?.type === "cancel" && [m.jobId, m.idx, m.token], [u.jobId, u.idx, u.token]);
  // a late result is stale; the queued unit never runs; the job stays cancelled
  w.send(classifyResult(u, 1));
  await new Promise((r) => setTimeout(r, 200));
  assertEquals(await w.take(), "none");
  assertEquals((await s.store.getJob(j.id))!.status, "cancelled");
  assertEquals((await s.store.listUnits(j.id)).map((x) => x.status), ["cancelled", "cancelled"]);
  assertEquals(await s.store.listVerdicts(j.id), []);
});
