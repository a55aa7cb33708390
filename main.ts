/**
 * `deno task start`: the Hono frontend on Deno, with Deno KV, plus (unless
 * TMDC_LOCAL_WORKER=0) one local GPU-worker process on the embedded default bundle.
 */
import { dirname } from "node:path";
import { config } from "./config.ts";
import { serveHttp } from "./http_server.ts";
import { createApp } from "./routes/app.ts";
import { Metrics } from "./service/metrics.ts";
import { Registry } from "./service/registry.ts";
import { Dispatcher } from "./service/dispatcher.ts";
import { Store } from "./store/kv_store.ts";

if (!config.kvPath.startsWith("http")) {
  await Deno.mkdir(dirname(config.kvPath), { recursive: true });
}
const store = await Store.open(config.kvPath);
// A KV that refuses writes (a full disk) must not keep the service from starting: recovery is
// retried at the next start, and /v1/ready says 503 with the reason meanwhile.
try {
  const dropped = await store.recover();
  if (dropped.length) {
    console.log(`[tmdc] removed ${dropped.length} job(s) interrupted while being created`);
  }
} catch (e) {
  console.error(
    `[tmdc] start-up recovery failed (${(e as Error).message}); serving anyway, ` +
      "GET /v1/ready reports the KV; it is tried again at the next start",
  );
}
const registry = await Registry.scan(config.modelsDir);
for (const r of registry.rejected) console.error(`[tmdc] bundle ${r.dir} refused: ${r.error}`);
const workerToken = config.workerToken ?? crypto.randomUUID();
// the dispatcher counts results into the metrics; the metrics read the dispatcher's peers
const metrics = new Metrics(store, () => dispatcher.peers.size);
const dispatcher = new Dispatcher(store, registry, {
  workerToken,
  leaseMs: config.leaseMs,
  heartbeatMs: config.heartbeatMs,
  helloTimeoutMs: config.helloTimeoutMs,
  onResult: (kind, outcome, msg) => {
    metrics.outcome(kind, msg?.type === "fail" ? "fail" : outcome);
    if (outcome === "ok" && msg?.type === "result" && msg.kind === "classify") {
      metrics.unetCalls.inc(msg.unetCalls);
    }
  },
});
const app = createApp({ store, registry, dispatcher, config, metrics });

const server = await serveHttp({
  hostname: config.hostname,
  port: config.port,
  limits: config.http,
  fetch: app.fetch,
  webSocketPath: "/v1/workers/ws",
  onWebSocket: (ws, authenticated) => dispatcher.accept(ws, { onHello: authenticated }),
});
const { hostname, port } = server.addr;
console.log(
  `[tmdc] listening on http://${hostname}:${port} (at most ${server.connections().max} connections)`,
);
console.log(
  `[tmdc] KV: ${config.kvPath}; bundles: ${[...registry.bundles.keys()].join(", ") || "none"}`,
);
// How another machine's worker joins: the token it must present, and where to connect.
if (config.workerToken) {
  console.log(
    `[tmdc] remote workers join with TMDC_FRONTEND_URL=http://<this host>:${port} and this ` +
      "deployment's TMDC_WORKER_TOKEN: `scripts/deno task worker` (deploy/README.md)",
  );
} else {
  console.log(
    "[tmdc] TMDC_WORKER_TOKEN is not set: the token is random for this run, so only the local " +
      "worker can join; set it (and TMDC_HOST) to let workers on other machines connect",
  );
}
if ((await store.countApiKeys()) === 0) {
  console.log(
    "[tmdc] no API key yet: create one with `scripts/deno task cli keys create --name you`",
  );
}

let worker: Deno.ChildProcess | undefined;
if (config.localWorker) {
  worker = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("./gpu-worker/main.ts", import.meta.url).pathname],
    env: {
      TMDC_WORKER_TOKEN: workerToken,
      TMDC_FRONTEND_URL: `http://${hostname}:${port}`,
      TMDC_WORKER_ID: Deno.env.get("TMDC_WORKER_ID") ?? "local-worker",
      // The worker exits when this pipe closes: when this process ends, however it ends.
      TMDC_WORKER_EXIT_WITH_PARENT: "1",
    },
    stdin: "piped",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

const shutdown = async () => {
  try {
    worker?.kill("SIGTERM");
  } catch { /* already gone */ }
  await server.shutdown();
  store.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);
