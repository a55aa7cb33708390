/** `bench take`: a worker's take (leaseNext) timed as the queue grows. */
import { takeBench } from "../bench/take.ts";
import { defineCommand } from "./command.ts";

export const benchTake = defineCommand({
  summary: "time a worker's take (leaseNext) with 100 … N jobs with work left from two keys",
  options: {
    sizes: { type: "ints", default: [100, 1000, 3000], help: "queue sizes" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
  },
  run: (values, _, argv) => takeBench({ sizes: [...values.sizes], json: values.json }, argv),
});
