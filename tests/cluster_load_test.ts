/**
 * The dispatcher and the HTTP server under load, through real processes (tests/cluster.ts):
 * a burst of synchronous classify requests against one worker, a unit that cannot be handed
 * out, a worker's heartbeats during a long unit, and thousands of idle sockets.
 */
import { assert_, assertEquals } from "./assert.ts";
import { type Cluster, clusterTest, freePort, waitFor } from "./cluster.ts";
import { fashionPngs, FAST_SETTINGS, tinyModelsDir } from "./service_helpers.ts";
import { REPO } from "./helpers.ts";
import { defaultSettings } from "../lib/dc_settings.ts";
import { loadBundle } from "../lib/bundle.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import { loadTest } from "../lib/fashion_mnist.ts";
import {
  type FrontendMessage,
  toBase64,
  WorkerMessage,
  type WorkerMessage as WorkerMsg,
} from "../gpu-worker/protocol.ts";
import { join } from "node:path";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function classify(c: Cluster, key: string, png: Uint8Array, name: string, wait = true) {
  const fd = new FormData();
  fd.append("image", new Blob([png.slice()], { type: "image/png" }), name);
  fd.append("options", JSON.stringify({ settings: FAST_SETTINGS }));
  const r = await fetch(`${c.url}/v1/classify${wait ? "" : "?wait=false"}`, {
    method: "POST",
    body: fd,
    headers: { authorization: `Bearer ${key}` },
  });
  const body = await r.json();
  return { status: r.status, jobId: r.headers.get("location")!.split("/").pop()!, body };
}

clusterTest(
  "load: 30 concurrent one-image classify requests, one worker: each job done once, no unit leased twice, the worker never dropped",
  async (c, key) => {
    c.startWorker("w1");
    const before = await c.waitForWorker("w1");
    const images = await fashionPngs(30);
    const t0 = performance.now();
    const answers = await Promise.all(
      images.map(({ png }, i) => classify(c, key, png, `burst-${i}.png`)),
    );
    const wallS = (performance.now() - t0) / 1000;
    console.log(`30 concurrent classify requests, one worker: ${wallS.toFixed(1)} s wall`);
    // every request answered synchronously (none fell back to 202)
    assertEquals(answers.map((a) => a.status), answers.map(() => 200));
    assertEquals(answers.map((a) => a.body.job.status), answers.map(() => "done"));

    const after = (await c.workersOnline()).find((w) => w.id === "w1");
    assertEquals(after?.connectedAt, before.connectedAt, "the worker was never dropped");

    const store = await c.openStore();
    let unetCalls = 0;
    try {
      for (const a of answers) {
        const job = (await store.getJob(a.jobId))!;
        assertEquals([job.total, job.done, job.failed], [1, 1, 0]);
        const units = await store.listUnits(a.jobId);
        assertEquals(units.map((u) => [u.status, u.attempts]), [["done", 1]]);
        const verdicts = await store.listVerdicts(a.jobId);
        assertEquals(verdicts.length, 1);
        unetCalls += verdicts[0].unetCalls;
      }
    } finally {
      store.close();
    }
    // the metrics saw the same burst: 30 results stored, their UNet calls, an empty queue
    const text = await (await fetch(`${c.url}/metrics`, {
      headers: { authorization: `Bearer ${key}` },
    })).text();
    const value = (series: string) =>
      Number(text.split("\n").find((l) => l.startsWith(series + " "))?.split(" ")[1]);
    assertEquals(value('tmdc_worker_results_total{kind="classify",outcome="ok"}'), 30);
    assertEquals(value("tmdc_unet_calls_total"), unetCalls);
    assertEquals(value("tmdc_queue_depth"), 0);
    assertEquals(value("tmdc_workers_connected"), 1);
    assertEquals(
      value('tmdc_http_requests_total{method="POST",route="/v1/classify",status="200"}'),
      30,
    );
  },
);

clusterTest(
  "load: a unit whose image was deleted fails its job; the worker keeps taking later jobs",
  async (c, key) => {
    const [a, b] = await fashionPngs(2);
    // queued while no worker is online; then its image blob is deleted through the store API
    const broken = await classify(c, key, a.png, "broken.png", false);
    assertEquals(broken.status, 202);
    const store = await c.openStore();
    try {
      const [unit] = await store.listUnits(broken.jobId);
      await store.deleteBlob(unit.input!.blob);

      c.startWorker("w1");
      const online = await c.waitForWorker("w1");
      const failed = await waitFor(async () => {
        const j = await store.getJob(broken.jobId);
        return j?.status === "failed" ? j : undefined;
      }, "the broken job to fail");
      assertEquals([failed.done, failed.failed], [0, 1]);
      const [u] = await store.listUnits(broken.jobId);
      assert_(/could not be dispatched/.test(u.error ?? ""), u.error);

      // the same worker, same connection, takes the next job at once
      const later = await classify(c, key, b.png, "later.png");
      assertEquals([later.status, later.body.job.status], [200, "done"]);
      assertEquals(later.body.verdicts[0].worker.id, "w1");
      const still = (await c.workersOnline()).find((w) => w.id === "w1");
      assertEquals(still?.connectedAt, online.connectedAt);
    } finally {
      store.close();
    }
  },
);

/** This process's limit on open files (Deno raised its soft limit to the hard one at start). */
function openFileLimit(): number {
  const line = Deno.readTextFileSync("/proc/self/limits").split("\n")
    .find((l) => l.startsWith("Max open files"))!;
  const soft = line.split(/\s{2,}/)[1];
  return soft === "unlimited" ? Infinity : Number(soft);
}

const IDLE_SOCKETS = 2000;
/** the frontend runs under this soft limit: its default cap is half, 512 connections */
const FRONTEND_FILE_LIMIT = 1024;
/** a health check's deadline: above one SYN retransmission (1 s) and a second (2 s more) */
const HEALTH_DEADLINE_MS = 5000;

clusterTest(
  "load: 2,000 idle unauthenticated sockets (raw TCP, WebSocket upgrades without hello) do not stop /v1/health",
  async (c) => {
    // The sockets are held by this process: it needs ~2,100 descriptors. Deno has already
    // raised its soft limit to the hard limit (20,000 here); nothing more can be had, so a
    // machine whose hard limit is lower fails here with a message instead of halfway. The
    // frontend gets a deliberately low limit (soft and hard, or Deno would raise it): the 2,000
    // sockets are four times its connection cap and twice its descriptors. Before the cap,
    // Deno.serve died at this point with "Too many open files".
    const limit = openFileLimit();
    assert_(
      limit >= IDLE_SOCKETS + 64,
      `this test needs ${IDLE_SOCKETS + 64} open files; the limit is ${limit}`,
    );
    const port = Number(new URL(c.url).port);
    const upgrade = new TextEncoder().encode(
      "GET /v1/workers/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let stop = false;
    const latencies: number[] = [];
    const failures: string[] = [];
    // One fresh connection per check: a pooled one may be among those shed. The deadline is
    // longer than TCP's first SYN retransmission (1 s): while the flood fills the kernel's
    // accept queue (net.core.somaxconn; 4096 here, far less on some CI hosts) the kernel drops
    // SYNs, the health check's included, before any server can see them. With somaxconn = 32
    // a 1 s deadline failed 2 of 633 checks at 1,003 ms; no accept loop can prevent that, so
    // the test asks that every check is answered and that most are answered at service speed.
    const poll = (async () => {
      while (!stop) {
        const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
        const t0 = performance.now();
        try {
          const r = await fetch(`${c.url}/v1/health`, {
            client,
            signal: AbortSignal.timeout(HEALTH_DEADLINE_MS),
          });
          await r.body?.cancel();
          if (r.status !== 200) failures.push(`status ${r.status}`);
        } catch (e) {
          failures.push((e as Error).message);
        } finally {
          client.close();
        }
        latencies.push(performance.now() - t0);
        await sleep(50);
      }
    })();
    const held: Deno.TcpConn[] = [];
    let refused = 0;
    try {
      for (let i = 0; i < IDLE_SOCKETS; i++) {
        try {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          // every tenth asks for a worker WebSocket and then never says hello
          if (i % 10 === 9) await conn.write(upgrade).catch(() => {});
          held.push(conn);
        } catch {
          refused++;
        }
      }
      await sleep(1500); // keep them all open a while longer, health still polled
    } finally {
      stop = true;
      await poll;
      for (const s of held) {
        try {
          s.close();
        } catch { /* closed by the server */ }
      }
    }
    const worst = Math.max(...latencies);
    const p90 = [...latencies].sort((a, b) => a - b)[Math.floor(latencies.length * 0.9)];
    console.log(
      `${held.length} idle sockets opened (${refused} refused), frontend under ulimit -n ${FRONTEND_FILE_LIMIT}: ` +
        `${latencies.length} health checks, worst ${worst.toFixed(0)} ms, 90th percentile ${
          p90.toFixed(0)
        } ms, ${failures.length} failed`,
    );
    assertEquals(failures, []);
    assert_(latencies.length >= 10, "health was polled throughout");
    assert_(worst < HEALTH_DEADLINE_MS, `health took ${worst.toFixed(0)} ms`);
    assert_(p90 < 250, `90% of health checks within 250 ms, not ${p90.toFixed(0)} ms`);
    // the frontend is alive and serving after all that
    const r = await fetch(`${c.url}/v1/health`);
    assertEquals(r.status, 200);
    await r.body?.cancel();
  },
  { fileLimit: FRONTEND_FILE_LIMIT },
);

clusterTest(
  "load: 1,500 WebSocket upgrades that never say hello nor answer pings are bounded and freed; workers still join",
  async (c) => {
    const port = Number(new URL(c.url).port);
    const pid = c.frontend!.pid;
    const fds = () => [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
    const base = fds();
    const upgrade = new TextEncoder().encode(
      "GET /v1/workers/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    const held: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 1500; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        await conn.write(upgrade).catch(() => {});
        held.push(conn);
      }
      // beyond TMDC_MAX_PENDING_WEBSOCKETS the upgrades were answered 503 and closed at once
      await sleep(500);
      const during = fds() - base;
      assert_(during <= 64 + 16, `${during} descriptors held while 1,500 upgrades wait`);
      const r = await fetch(`${c.url}/v1/health`, {
        signal: AbortSignal.timeout(HEALTH_DEADLINE_MS),
      });
      assertEquals(r.status, 200);
      await r.body?.cancel();
      // the upgraded ones answer no ping: dropped after two idle timeouts (3 s each here)
      const freed = await waitFor(
        async () => {
          await sleep(250);
          return fds() - base <= 4 ? true : undefined;
        },
        "the silent sockets to be dropped",
        15_000,
      );
      assert_(freed);
      // and a real worker can join again right away (the pending slots are free)
      c.startWorker("w1");
      await c.waitForWorker("w1");
    } finally {
      for (const s of held) {
        try {
          s.close();
        } catch { /* closed by the server */ }
      }
    }
  },
  { fileLimit: FRONTEND_FILE_LIMIT },
);

/**
 * A long unit on a real worker process, the frontend played by this test: heartbeats keep
 * their period while the unit computes, and the worker (capacity 1) asks for nothing more
 * until it has answered.
 */
Deno.test({
  name:
    "load: a worker heartbeats on time through a long unit and takes nothing beyond its capacity",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const models = await tinyModelsDir();
    const bundle = await loadBundle(join(models, "tiny-diffusion"));
    const settings = {
      ...defaultSettings(bundle.manifest as DiffusionManifest),
      // 10·200 + 5·400 = 4,000 UNet calls: a few seconds on a 2-core CPU
      stages: [{ nSamples: 200, keep: 5 }, { nSamples: 400, keep: 1 }],
      gridSize: 400,
    };
    const test = await loadTest(REPO);
    const pixels = toBase64(new Uint8Array(test.images.slice(0, 784).buffer));
    const HEARTBEAT_MS = 200;
    const events: { t: number; msg: WorkerMsg }[] = [];
    let sent = false;
    let result: WorkerMsg | undefined;
    const port = freePort();
    const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      const send = (m: FrontendMessage) => socket.send(JSON.stringify(m));
      socket.onmessage = (ev) => {
        const msg = WorkerMessage.parse(JSON.parse(String(ev.data)));
        events.push({ t: performance.now(), msg });
        if (msg.type === "hello") {
          send({ type: "welcome", leaseMs: 1000, heartbeatMs: HEARTBEAT_MS });
        }
        if (msg.type === "take" && !sent) {
          sent = true;
          send({
            type: "unit",
            kind: "classify",
            jobId: "job",
            idx: 0,
            token: "lease",
            bundle: bundle.id,
            adapter: null,
            lora: null,
            settings,
            pixels,
          });
        } else if (msg.type === "take") send({ type: "none" });
        if (msg.type === "result" || msg.type === "fail") result = msg;
      };
      return response;
    });
    const worker = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--config",
        join(REPO, "deno.json"),
        join(REPO, "gpu-worker/main.ts"),
      ],
      env: {
        TMDC_WORKER_TOKEN: "t",
        TMDC_FRONTEND_URL: `http://127.0.0.1:${port}`,
        TMDC_MODELS_DIR: models,
        TMDC_WORKER_ID: "hb",
        TMDC_PROVIDERS: "cpu",
        TMDC_WORKER_THREADS: "1",
      },
      stdout: "null",
      stderr: Deno.env.get("TMDC_TEST_LOGS") ? "inherit" : "null",
    }).spawn();
    try {
      await waitFor(() => Promise.resolve(result), "the unit's result", 120_000);
      const unitAt = events.find((e) => e.msg.type === "take")!.t;
      const doneAt = events.find((e) => e.msg.type === "result")!.t;
      const during = events.filter((e) => e.t > unitAt && e.t < doneAt);
      const beats = during.filter((e) => e.msg.type === "heartbeat");
      const times = [unitAt, ...beats.map((e) => e.t), doneAt];
      const gaps = times.slice(1).map((t, i) => t - times[i]);
      const worst = Math.max(...gaps);
      console.log(
        `unit ran ${((doneAt - unitAt) / 1000).toFixed(1)} s: ${beats.length} heartbeats ` +
          `(period ${HEARTBEAT_MS} ms), worst gap ${worst.toFixed(0)} ms`,
      );
      assertEquals(result!.type, "result");
      assert_(doneAt - unitAt > 5 * HEARTBEAT_MS, "the unit is long enough to need heartbeats");
      assert_(worst < 3 * HEARTBEAT_MS, `a heartbeat gap of ${worst.toFixed(0)} ms`);
      const last = beats.at(-1)!.msg as Extract<WorkerMsg, { type: "heartbeat" }>;
      assert_(last.progress && last.progress.calls > 0, "heartbeats carry progress");
      // capacity 1: no take while the unit ran
      assertEquals(during.filter((e) => e.msg.type === "take").length, 0);
      await waitFor(
        () =>
          Promise.resolve(events.some((e) => e.t > doneAt && e.msg.type === "take") || undefined),
        "a take after the result",
      );
    } finally {
      worker.kill("SIGKILL");
      await worker.status;
      await server.shutdown();
    }
  },
});

/**
 * A unit in flight when the worker's socket drops: the worker reconnects and, until the new
 * socket is welcomed, says nothing but hello (anything else is refused as unauthorized); the
 * unit's result reaches the frontend on the new socket, whenever the unit ends.
 */
Deno.test({
  name: "load: a worker that reconnects mid-unit says only hello until welcomed, then delivers",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const models = await tinyModelsDir();
    const bundle = await loadBundle(join(models, "tiny-diffusion"));
    const settings = {
      ...defaultSettings(bundle.manifest as DiffusionManifest),
      stages: [{ nSamples: 100, keep: 5 }, { nSamples: 200, keep: 1 }],
      gridSize: 200,
    };
    const test = await loadTest(REPO);
    const pixels = toBase64(new Uint8Array(test.images.slice(0, 784).buffer));
    let connections = 0;
    let sent = false;
    const beforeWelcome: string[] = [];
    let result: WorkerMsg | undefined;
    const port = freePort();
    const server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      const n = ++connections;
      let welcomed = false;
      let helloSeen = false;
      const send = (m: FrontendMessage) => socket.send(JSON.stringify(m));
      const welcome = () => {
        welcomed = true;
        send({ type: "welcome", leaseMs: 10_000, heartbeatMs: 100 });
      };
      socket.onmessage = (ev) => {
        const msg = WorkerMessage.parse(JSON.parse(String(ev.data)));
        if (msg.type === "hello") {
          // the second socket is welcomed late: heartbeats would fall in the gap
          if (!helloSeen) n === 1 ? welcome() : setTimeout(welcome, 800);
          helloSeen = true;
          return;
        }
        if (!welcomed) beforeWelcome.push(`${n}:${msg.type}`);
        if (msg.type === "take" && !sent) {
          sent = true;
          send({
            type: "unit",
            kind: "classify",
            jobId: "job",
            idx: 0,
            token: "lease",
            bundle: bundle.id,
            adapter: null,
            lora: null,
            settings,
            pixels,
          });
        } else if (msg.type === "take") send({ type: "none" });
        if (msg.type === "heartbeat" && n === 1) socket.close(); // the unit is in flight
        if (msg.type === "result" || msg.type === "fail") result = msg;
      };
      return response;
    });
    const worker = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        "--config",
        join(REPO, "deno.json"),
        join(REPO, "gpu-worker/main.ts"),
      ],
      env: {
        TMDC_WORKER_TOKEN: "t",
        TMDC_FRONTEND_URL: `http://127.0.0.1:${port}`,
        TMDC_MODELS_DIR: models,
        TMDC_WORKER_ID: "reconnect",
        TMDC_PROVIDERS: "cpu",
        TMDC_WORKER_THREADS: "1",
      },
      stdout: "null",
      stderr: Deno.env.get("TMDC_TEST_LOGS") ? "inherit" : "null",
    }).spawn();
    try {
      await waitFor(() => Promise.resolve(result), "the unit's result", 120_000);
      assertEquals(connections, 2);
      assertEquals(beforeWelcome, []);
      assertEquals([result!.type, (result as { token: string }).token], ["result", "lease"]);
    } finally {
      worker.kill("SIGKILL");
      await worker.status;
      await server.shutdown();
    }
  },
});

/** Process ids whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(e.name));
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** Running (not gone, not a zombie waiting to be reaped). */
function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

clusterTest("load: a frontend killed with SIGKILL takes its local worker with it", async (c) => {
  await c.stopFrontend(); // the cluster's frontend runs without a local worker; this one has one
  await c.startFrontend({ env: { TMDC_LOCAL_WORKER: "1", TMDC_WORKER_ID: "local" } });
  await c.waitForWorker("local");
  const [worker] = childrenOf(c.frontend!.pid);
  assert_(worker && running(worker), "the local worker is the frontend's child");
  await c.stopFrontend(); // SIGKILL: no shutdown handler runs
  await waitFor(
    () => Promise.resolve(running(worker) ? undefined : true),
    "the orphaned worker to exit",
    10_000,
  );
});
