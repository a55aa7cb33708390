/**
 * Prometheus metrics (prom-client): HTTP requests and latency by route, worker results by
 * kind and outcome, UNet calls of the verdicts stored, lease expiries (units taken from a
 * worker that stopped heartbeating), and, read at scrape time, the queue depth, units by state
 * and workers connected. One registry per frontend process.
 */
import client from "prom-client";
import type { Store } from "../store/kv_store.ts";

/** stored, stale (the lease was lost), rejected (the checks refused it), or a worker's fail */
export type ResultOutcome = "ok" | "stale" | "rejected" | "fail";

export class Metrics {
  readonly registry = new client.Registry();
  readonly requests = new client.Counter({
    name: "tmdc_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly latency = new client.Histogram({
    name: "tmdc_http_request_duration_seconds",
    help: "time to answer an HTTP request, by method and route pattern",
    labelNames: ["method", "route"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly results = new client.Counter({
    name: "tmdc_worker_results_total",
    help: "results and fails workers sent, by unit kind and what became of them",
    labelNames: ["kind", "outcome"] as const,
    registers: [this.registry],
  });
  readonly unetCalls = new client.Counter({
    name: "tmdc_unet_calls_total",
    help: "UNet calls of the classify verdicts stored (as the workers report them)",
    registers: [this.registry],
  });

  constructor(store: Store, workers: () => number) {
    new client.Gauge({
      name: "tmdc_workers_connected",
      help: "workers connected and welcomed",
      registers: [this.registry],
      collect() {
        this.set(workers());
      },
    });
    new client.Counter({
      name: "tmdc_lease_expiries_total",
      help: "units leased again because their worker stopped heartbeating",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(store.stats.leaseExpiries);
      },
    });
    const depth = new client.Gauge({
      name: "tmdc_queue_depth",
      help: "jobs with work left (queued or running)",
      registers: [this.registry],
    });
    const units = new client.Gauge({
      name: "tmdc_units",
      help: "units of the jobs with work left, by state",
      labelNames: ["state"] as const,
      registers: [this.registry],
    });
    // one scan of the active jobs feeds both gauges
    this.#scan = async () => {
      const s = await store.activeSummary();
      depth.set(s.jobs);
      for (const state of ["queued", "leased", "done", "failed", "cancelled"] as const) {
        units.set({ state }, s.units[state] ?? 0);
      }
    };
  }

  #scan: () => Promise<void>;

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    await this.#scan();
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  outcome(kind: string, outcome: ResultOutcome): void {
    this.results.inc({ kind, outcome });
  }
}
