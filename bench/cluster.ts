/**
 * Real processes on 127.0.0.1: a frontend (main.ts) and GPU workers (gpu-worker/main.ts) as
 * separate Deno processes on a fresh KV file — what the end-to-end tests and `bench load` drive.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Store } from "../store/kv_store.ts";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const DENO = Deno.execPath();
const TOKEN = "e2e-worker-token";

/** `deno run` of a repository script with the project's config and permissions. */
function runArgs(script: string, ...rest: string[]): string[] {
  return [
    "run",
    "--allow-all",
    "--unstable-kv",
    "--config",
    join(REPO, "deno.json"),
    join(REPO, script),
    ...rest,
  ];
}

export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export class Cluster {
  frontend?: Deno.ChildProcess;
  workers = new Map<string, Deno.ChildProcess>();
  constructor(readonly env: Record<string, string>, readonly url: string) {}

  /**
   * A fresh KV file and port; `models` and `defaultBundle` name what it serves, and `env`
   * overrides the defaults below (e.g. a longer lease, a worker's capacity).
   */
  static async create(
    models: string,
    defaultBundle: string,
    env: Record<string, string> = {},
  ): Promise<Cluster> {
    const dir = await Deno.makeTempDir({ prefix: "tmdc-e2e-" });
    const port = freePort();
    const base = {
      TMDC_PORT: String(port),
      TMDC_KV_PATH: join(dir, "kv.sqlite"),
      TMDC_MODELS_DIR: models,
      TMDC_DEFAULT_BUNDLE: defaultBundle,
      TMDC_WORKER_TOKEN: TOKEN,
      TMDC_LOCAL_WORKER: "0",
      TMDC_LEASE_MS: "1500",
      TMDC_HEARTBEAT_MS: "300",
      TMDC_WORKER_THREADS: "1",
      TMDC_PROVIDERS: "cpu",
      TMDC_FRONTEND_URL: `http://127.0.0.1:${port}`,
      ...env,
    };
    return new Cluster(base, `http://127.0.0.1:${port}`);
  }

  /**
   * `fileLimit`: the limit on open files the process runs under (`ulimit -n`, soft and hard:
   * Deno raises its soft limit to the hard one at start-up).
   */
  spawn(
    script: string,
    extra: Record<string, string> = {},
    fileLimit?: number,
  ): Deno.ChildProcess {
    const [cmd, args] = fileLimit
      ? ["sh", ["-c", `ulimit -n ${fileLimit} && exec "$0" "$@"`, DENO, ...runArgs(script)]]
      : [DENO, runArgs(script)];
    return new Deno.Command(cmd, {
      args,
      env: { ...this.env, ...extra },
      stdout: "null",
      stderr: Deno.env.get("TMDC_TEST_LOGS") ? "inherit" : "null",
    }).spawn();
  }

  async startFrontend(
    opts: { fileLimit?: number; env?: Record<string, string> } = {},
  ): Promise<void> {
    this.frontend = this.spawn("main.ts", opts.env, opts.fileLimit);
    for (let i = 0; i < 200; i++) {
      try {
        const r = await fetch(`${this.url}/v1/health`);
        await r.body?.cancel();
        if (r.ok) return;
      } catch { /* not up yet */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("frontend did not start");
  }

  async stopFrontend(): Promise<void> {
    this.frontend!.kill("SIGKILL");
    await this.frontend!.status;
  }

  startWorker(id: string): void {
    this.workers.set(id, this.spawn("gpu-worker/main.ts", { TMDC_WORKER_ID: id }));
  }

  async killWorker(id: string): Promise<void> {
    const w = this.workers.get(id)!;
    w.kill("SIGKILL");
    await w.status;
    this.workers.delete(id);
  }

  /** The workers the frontend lists as online (GET /v1/models). */
  async workersOnline(): Promise<{ id: string; connectedAt: string; capacity?: number }[]> {
    const r = await fetch(`${this.url}/v1/models`);
    return (await r.json()).workers;
  }

  /** Wait until worker `id` is online; returns its listing. */
  waitForWorker(id: string) {
    return waitFor(async () => (await this.workersOnline()).find((w) => w.id === id), `${id}`);
  }

  /** The cluster's KV through the store API (SQLite: safe beside the running frontend). */
  openStore(): Promise<Store> {
    return Store.open(this.env.TMDC_KV_PATH);
  }

  async apiKey(name = "e2e"): Promise<string> {
    const out = await new Deno.Command(DENO, {
      args: runArgs("cli.ts", "keys", "create", "--name", name),
      env: this.env,
    }).output();
    return JSON.parse(new TextDecoder().decode(out.stdout)).key;
  }

  async shutdown(): Promise<void> {
    for (const id of [...this.workers.keys()]) await this.killWorker(id);
    if (this.frontend) await this.stopFrontend().catch(() => {});
  }
}

export async function waitFor<T>(
  f: () => Promise<T | undefined>,
  what: string,
  ms = 60_000,
): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}
