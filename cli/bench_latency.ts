/** `bench latency`: single-image verdict latency through HTTP vs the engine's compute time. */
import { httpLatency } from "../bench/http_latency.ts";
import { defineCommand } from "./command.ts";

export const benchLatency = defineCommand({
  summary: "single-image verdict latency through the real service vs the worker's compute time",
  options: {
    n: { type: "int", min: 1, max: 10000, default: 64, help: "timed one-image requests" },
    seed: { type: "int", min: 0, max: 2 ** 32 - 1, default: 0, help: "test subset seed" },
    warmup: { type: "int", min: 0, max: 100, default: 4, help: "untimed requests first" },
    capacity: {
      type: "int",
      min: 1,
      max: 64,
      default: 1,
      help: "units the local worker runs at once (TMDC_WORKER_CAPACITY)",
    },
    concurrency: { type: "int", min: 1, max: 64, default: 1, help: "requests in flight at once" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  async run(values, _, argv) {
    await httpLatency(
      {
        n: values.n,
        seed: values.seed,
        warmup: values.warmup,
        json: values.json,
        capacity: values.capacity,
        concurrency: values.concurrency,
      },
      argv,
    );
  },
});
