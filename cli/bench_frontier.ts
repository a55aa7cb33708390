/** `bench frontier`: choose the classifier's default on validation error grids, report on test. */
import { frontier } from "../bench/dc_frontier.ts";
import { defineCommand } from "./command.ts";

export const benchFrontier = defineCommand({
  summary: "the accuracy-and-cost frontier of DC policies, simulated on `bench dump-errors` grids",
  description: "Chooses the cheapest policy within --tolerance of the best validation accuracy; " +
    "with --test, reports it against the old default and the full grid on the test dump.",
  options: {
    validation: { type: "path", required: true, arg: "DIR", help: "a validation dump" },
    test: { type: "path", arg: "DIR", help: "a test dump (same bundle and grid)" },
    tolerance: { type: "number", min: 0, default: 0.005, help: "accuracy below the best allowed" },
    json: { type: "path", default: "-", help: "report file (- = stdout)" },
    svg: { type: "path", arg: "PATH", help: "the frontier plot as SVG" },
    png: { type: "path", arg: "PATH", help: "the frontier plot as PNG" },
  },
  async run(values, _, argv) {
    await frontier({
      validation: values.validation,
      test: values.test,
      tolerance: values.tolerance,
      json: values.json,
      svg: values.svg,
      png: values.png,
    }, argv);
  },
});
