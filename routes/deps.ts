/** What the HTTP app is built from: the service's dependencies plus the worker endpoint. */
import type { Config } from "../config.ts";
import type { JobQueue, ServiceDeps } from "../service/context.ts";
import type { OnlineWorker } from "../service/registry.ts";
import type { Metrics } from "../service/metrics.ts";

/** The dispatcher as the HTTP layer sees it (service/dispatcher.ts implements it). */
export interface WorkerGateway extends JobQueue {
  readonly peers: { readonly size: number };
  /** the workers online, as GET /v1/models lists them */
  summary(): (OnlineWorker & Record<string, unknown>)[];
}

export interface AppDeps extends ServiceDeps {
  dispatcher: WorkerGateway;
  config: Config;
  /** the process's metrics (the dispatcher counts results into the same); made here if absent */
  metrics?: Metrics;
}

/** Request-body caps per kind of route (config.limits, TMDC_MAX_*_BYTES). */
export function bodyLimits(limits: Config["limits"]) {
  return {
    /** evaluation and fine-tune requests */
    json: limits.maxJsonBytes,
    /** a classify upload (images and options) */
    upload: limits.maxUploadBytes,
    /** an uploaded labelled set: up to maxDatasetImages images */
    dataset: limits.maxDatasetBytes,
  };
}
