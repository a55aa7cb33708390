/** What the HTTP app is built from: the service's dependencies plus the worker endpoint. */
import type { Config } from "../config.ts";
import type { JobQueue, ServiceDeps } from "../service/context.ts";
import type { OnlineWorker } from "../service/registry.ts";

/** The dispatcher as the HTTP layer sees it (service/dispatcher.ts implements it). */
export interface WorkerGateway extends JobQueue {
  readonly peers: { readonly size: number };
  /** the workers online, as GET /v1/models lists them */
  summary(): (OnlineWorker & Record<string, unknown>)[];
  /** take over a freshly upgraded worker WebSocket */
  accept(socket: WebSocket): void;
}

export interface AppDeps extends ServiceDeps {
  dispatcher: WorkerGateway;
  config: Config;
}

/**
 * Request-body caps per kind of route. `maxJsonBytes` and `maxDatasetBytes` fall back to these
 * defaults until config.ts names them (TMDC_MAX_JSON_BYTES, TMDC_MAX_DATASET_BYTES).
 */
export function bodyLimits(limits: Config["limits"]) {
  const l = limits as Config["limits"] & { maxJsonBytes?: number; maxDatasetBytes?: number };
  return {
    /** evaluation and fine-tune requests: a few hundred bytes in practice */
    json: l.maxJsonBytes ?? 256 * 1024,
    /** a classify upload (images and options) */
    upload: l.maxUploadBytes,
    /** an uploaded labelled set: up to maxDatasetImages images */
    dataset: l.maxDatasetBytes ?? 64 * 1024 * 1024,
  };
}
