/** `bench table-md`: the robustness table document from `bench table` reports. */
import { tableMarkdown } from "../bench/table_markdown.ts";
import { defineCommand } from "./command.ts";

export const benchTableMd = defineCommand({
  summary: "the robustness table as markdown (stdout) from `bench table` JSON reports",
  positionals: "REPORT.json…",
  options: {},
  run: (_, files) => tableMarkdown(files),
});
