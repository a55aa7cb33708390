/** `bench load`: burst, fair share and SIGKILL faults on real frontend and worker processes. */
import { loadBench } from "../bench/load.ts";
import { defineCommand } from "./command.ts";

export const benchLoad = defineCommand({
  summary: "load and faults on real processes: burst + status readers, fair share, SIGKILLs",
  description:
    "Starts a frontend and workers on 127.0.0.1 with a fresh KV and the deployment's models;\n" +
    "reports status-read latency during a two-key burst, fair share, and exactly-once\n" +
    "completion while workers and the frontend are SIGKILLed and restarted.",
  options: {
    images: {
      type: "int",
      min: 1,
      max: 1000,
      default: 25,
      help: "one-image jobs per key (2 keys)",
    },
    readers: { type: "int", min: 0, max: 200, default: 20, help: "clients polling job status" },
    workers: { type: "int", min: 1, max: 8, default: 2, help: "worker processes" },
    "worker-kills": { type: "int", min: 0, max: 100, default: 20, help: "worker SIGKILLs" },
    "frontend-kills": { type: "int", min: 0, max: 20, default: 5, help: "frontend SIGKILLs" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (values, _, argv) => loadBench(values, argv),
});
