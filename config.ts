/** Every environment variable the service reads, read once, in one frozen object. */
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const ROOT = dirname(fileURLToPath(import.meta.url));
const env = (k: string, d: string) => Deno.env.get(k) ?? d;
const int = (k: string, d: number) => {
  const v = Number(env(k, String(d)));
  if (!Number.isFinite(v)) throw new Error(`${k} must be a number`);
  return v;
};

export const config = Object.freeze({
  root: ROOT,
  port: int("TMDC_PORT", 8787),
  hostname: env("TMDC_HOST", "127.0.0.1"),
  /** a file path (local SQLite) or an http(s) KV Connect URL for a shared denokv */
  kvPath: env("TMDC_KV_PATH", join(ROOT, "data", "tmdc.kv")),
  modelsDir: env("TMDC_MODELS_DIR", join(ROOT, "models")),
  defaultBundle: env("TMDC_DEFAULT_BUNDLE", "fmnist-ddpm-unet32"),
  /** the classifier transfer attacks and Truth Maximization attack by default */
  defaultSurrogate: env("TMDC_DEFAULT_SURROGATE", "resnet14-fmnist"),
  /** shared secret that workers present in their hello message */
  workerToken: Deno.env.get("TMDC_WORKER_TOKEN"),
  frontendUrl: env("TMDC_FRONTEND_URL", "http://127.0.0.1:8787"),
  /** /v1/ready writes a probe key at most this often (ms); between, the last answer stands */
  readyProbeMs: int("TMDC_READY_PROBE_MS", 5000),
  /** browser origins allowed to call the API from other sites (comma-separated; none by default) */
  corsOrigins: env("TMDC_CORS_ORIGINS", "").split(",").map((s) => s.trim()).filter(Boolean),
  /** one JSON line per request on stdout (request id, method, path, status, ms, key id) */
  accessLog: env("TMDC_ACCESS_LOG", "1") !== "0",
  /** start one worker beside the frontend (`deno task start`) */
  localWorker: env("TMDC_LOCAL_WORKER", "1") !== "0",
  workerThreads: int("TMDC_WORKER_THREADS", 0),
  workerProviders: env("TMDC_PROVIDERS", "cuda,cpu").split(",").map((s) =>
    s.trim()
  ) as ("cuda" | "cpu")[],
  leaseMs: int("TMDC_LEASE_MS", 30_000),
  heartbeatMs: int("TMDC_HEARTBEAT_MS", 5_000),
  /** units a worker runs at once, each in its own compute thread (one per device) */
  workerCapacity: int("TMDC_WORKER_CAPACITY", 1),
  /** compute threads (Web Workers) the capacity is spread over; each holds its own sessions */
  workerSlots: int("TMDC_WORKER_SLOTS", 1),
  /** a worker socket that has not said hello by then is closed */
  /**
   * a worker socket that has not said hello by then is closed; longer than two WebSocket idle
   * timeouts, so that sockets which answer nothing are already gone (see http.webSocketIdleS)
   */
  helloTimeoutMs: int("TMDC_HELLO_TIMEOUT_MS", 10_000),
  /**
   * set by main.ts for its local worker: exit when standard input closes, i.e. when the
   * frontend that started it is gone (even SIGKILLed), instead of living on orphaned
   */
  workerExitWithParent: env("TMDC_WORKER_EXIT_WITH_PARENT", "0") === "1",
  http: Object.freeze({
    /**
     * open connections at most (0: from the file-descriptor limit, see http_server.ts); beyond it the
     * oldest connection that has not sent a request yet is dropped to make room
     */
    maxConnections: int("TMDC_MAX_CONNECTIONS", 0),
    /** a connection must have sent its request headers by then */
    headersTimeoutMs: int("TMDC_HEADERS_TIMEOUT_MS", 10_000),
    /** … and its whole request (an 8 MB upload on a slow link) */
    requestTimeoutMs: int("TMDC_REQUEST_TIMEOUT_MS", 120_000),
    /** an idle keep-alive connection is closed after this */
    keepAliveTimeoutMs: int("TMDC_KEEPALIVE_TIMEOUT_MS", 5_000),
    /**
     * a WebSocket is pinged after this many idle seconds and dropped if no pong follows in as
     * many: the only way a socket that answers nothing is freed (a close handshake it never
     * answers would hold its descriptor for ever)
     */
    webSocketIdleS: int("TMDC_WS_IDLE_TIMEOUT_S", 3),
    /** upgraded worker sockets that have not authenticated yet, at most; beyond: 503 */
    maxPendingWebSockets: int("TMDC_MAX_PENDING_WEBSOCKETS", 64),
  }),
  limits: Object.freeze({
    maxUploadBytes: int("TMDC_MAX_UPLOAD_BYTES", 8 * 1024 * 1024),
    maxImageBytes: int("TMDC_MAX_IMAGE_BYTES", 2 * 1024 * 1024),
    maxImagePixels: int("TMDC_MAX_IMAGE_PIXELS", 4096 * 4096),
    /** longer side / shorter side: a 1×16M strip is refused from its header, before decoding */
    maxImageAspect: int("TMDC_MAX_IMAGE_ASPECT", 16),
    /** failed authentications per client address and window before 429 + Retry-After */
    maxAuthFailures: int("TMDC_MAX_AUTH_FAILURES", 30),
    authWindowMs: int("TMDC_AUTH_WINDOW_MS", 60_000),
    maxImagesPerRequest: int("TMDC_MAX_IMAGES", 256),
    maxDatasetImages: int("TMDC_MAX_DATASET_IMAGES", 2048),
    /** request bodies of the JSON routes (evaluations, fine-tunes): a few hundred bytes in practice */
    maxJsonBytes: int("TMDC_MAX_JSON_BYTES", 256 * 1024),
    /** an uploaded labelled set's multipart body */
    maxDatasetBytes: int("TMDC_MAX_DATASET_BYTES", 64 * 1024 * 1024),
    syncImages: int("TMDC_SYNC_IMAGES", 4),
    syncWaitMs: int("TMDC_SYNC_WAIT_MS", 120_000),
    maxUnetCallsPerImage: int("TMDC_MAX_UNET_CALLS", 20_000),
    /** model evaluations per image an attack may spend (a DC gradient costs 2·classes·timesteps) */
    maxAttackEvalsPerImage: int("TMDC_MAX_ATTACK_EVALS", 2_000_000),
    /** jobs with work left one key may have at once (0: no limit); beyond: 429 */
    quotaActiveJobs: int("TMDC_QUOTA_ACTIVE_JOBS", 100),
    /** estimated model calls one key may submit per UTC day (0: no limit); beyond: 429 */
    quotaDailyCalls: int("TMDC_QUOTA_DAILY_CALLS", 0),
    /** model calls one evaluation request may spend in all (images × attack × gradient cost) */
    maxEvaluationCalls: int("TMDC_MAX_EVALUATION_CALLS", 2_000_000_000),
  }),
});
export type Config = typeof config;
