/** What the service's operations need: storage, the model registry, the dispatcher, limits. */
import type { Config } from "../config.ts";
import type { Store } from "../store/kv_store.ts";
import type { Registry } from "./registry.ts";

/** The part of the dispatcher that job creation uses (service/dispatcher.ts implements it). */
export interface JobQueue {
  /** new units were queued: idle workers should ask for them */
  wake(): void;
  /** true when the job finished within `timeoutMs` */
  waitForJob(jobId: string, timeoutMs: number): Promise<boolean>;
}

/** Who asks: reads of private jobs are for their owner and admins only. */
export interface Caller {
  id: string;
  admin: boolean;
}

export interface ServiceDeps {
  store: Store;
  registry: Registry;
  dispatcher: JobQueue;
  config: Pick<Config, "defaultBundle" | "limits">;
}
