/** `bench unet-throughput`: UNet calls/s of a bundle's graphs on the provider the worker picks. */
import { unetThroughput } from "../bench/unet_throughput.ts";
import { defineCommand } from "./command.ts";
import { THREADS } from "./shared_options.ts";

export const benchUnetThroughput = defineCommand({
  summary:
    "UNet calls per second of a diffusion bundle (CUDA when installed, else CPU; the report says)",
  options: {
    bundle: {
      type: "bundle",
      default: "fmnist-ddpm-unet32",
      help: "bundle (name under models/ or a folder)",
    },
    rows: { type: "ints", min: 1, max: 4096, default: [10, 50], help: "rows per call" },
    seconds: { type: "number", above: 0, max: 3600, default: 5, help: "timed seconds per cell" },
    cuda: { type: "boolean", help: "try the CUDA execution provider first" },
    threads: THREADS,
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (v, _, argv) =>
    unetThroughput({
      bundle: v.bundle,
      rows: [...v.rows],
      seconds: v.seconds,
      providers: v.cuda ? ["cuda", "cpu"] : ["cpu"],
      threads: v.threads,
      json: v.json,
    }, argv),
});
