/**
 * `deno task cli bench table-md A.json B.json …`: the robustness table document from `bench table`
 * reports (transfer and adaptive side by side, each row labelled with its mode and settings),
 * the per-image comparison of the two, the worst case over every attack per budget, and the
 * cells of the grid that have no result yet.
 */
import { wilson } from "../lib/stats.ts";
import { transferNotStronger } from "../lib/sanity.ts";
import { DEFAULT_CELLS } from "./robustness_table.ts";
import { readUserJson } from "../cli/paths.ts";

export interface Cell {
  key: string;
  n: number;
  dc_robust_accuracy: number;
  ci95: [number, number];
  source_robust_accuracy: number;
  sanity?: { name: string; ok: boolean; detail: string }[];
  attack: { steps?: number; version?: string };
  dc_robust_flags: number[];
  evaluations_per_image?: { surrogate_calls?: number; dc_gradient_calls?: number };
  attacked_images?: number;
}
export interface Report {
  mode: "transfer" | "adaptive";
  n: number;
  command: string;
  clean: {
    dc_accuracy: number;
    dc_ci95: [number, number];
    surrogate_accuracy: number;
    surrogate_ci95: [number, number];
  };
  source: { kind: string; timesteps?: number[]; logit_scale?: number };
  target: { adapter: { id: string; step: number } | null };
  cells: Cell[];
  sanity: { name: string; ok: boolean; detail: string }[];
  machine?: { os?: string; cpus?: number };
}

const pct = (x: number) => (x * 100).toFixed(1);
const ci = (c: [number, number]) => `[${pct(c[0])}, ${pct(c[1])}]`;
const budget = (key: string) => key.split("@")[1];
const attackName = (key: string) => key.split("@")[0];
const targetOf = (r: Report) =>
  r.target.adapter ? `TMDC (adapter step ${r.target.adapter.step})` : "DC";
const howOf = (r: Report) =>
  r.mode === "transfer"
    ? "transfer from surrogate"
    : `adaptive (${r.source.timesteps?.length} timesteps × all classes, fixed noise, scale ${r.source.logit_scale})`;
const evals = (c: Cell) => {
  const e = c.evaluations_per_image;
  if (e?.surrogate_calls !== undefined) return `${e.surrogate_calls} surrogate`;
  if (e?.dc_gradient_calls !== undefined) return `${e.dc_gradient_calls} DC gradients`;
  return "";
};

/** 1 where an image survives every cell given (same images: prefixes of one seeded subset). */
const survivesAll = (cells: Cell[], m: number) =>
  Uint8Array.from({ length: m }, (_, i) => cells.every((c) => c.dc_robust_flags[i]) ? 1 : 0);

/** Print the document; `files` are named in it as typed and read from the user's folder. */
export async function tableMarkdown(files: string[]) {
  const reports = await Promise.all(
    files.map(async (f) => ({ f, r: await readUserJson<Report>(f) })),
  );
  console.log(renderTable(reports));
}

/** The markdown document for reports read from files `f`. */
export function renderTable(reports: { f: string; r: Report }[]): string {
  const files = reports.map(({ f }) => f);
  const lines = [
    "| mode | target | attack @ budget | n | DC robust [95% CI] | source's own robust | attack budget / image | cell checks |",
    "|---|---|---|---|---|---|---|---|",
  ];
  const notes: string[] = [];
  for (const { f, r } of reports) {
    const how = howOf(r), target = targetOf(r);
    lines.push(
      `| ${how} | ${target} | clean | ${r.n} | ${pct(r.clean.dc_accuracy)} ${
        ci(r.clean.dc_ci95)
      } | surrogate ${pct(r.clean.surrogate_accuracy)} | | |`,
    );
    for (const c of r.cells) {
      const checks = (c.sanity ?? []).map((s) => `${s.ok ? "✓" : "✗"} ${s.name}`).join("; ");
      lines.push(
        `| ${how} | ${target} | ${c.key} | ${c.n} | ${pct(c.dc_robust_accuracy)} ${ci(c.ci95)} | ${
          pct(c.source_robust_accuracy)
        } | ${evals(c)} | ${checks} |`,
      );
    }
    const rescored = r.cells.flatMap((c) =>
      (c.sanity ?? []).filter((s) => s.name.startsWith("fixed-noise")).map((s) =>
        `${c.key}: ${s.detail}`
      )
    );
    notes.push(
      `- \`${f.split("/").pop()}\` (${how}, ${target}): ${
        r.sanity.map((s) => `${s.ok ? "✓" : "✗"} ${s.name} (${s.detail})`).join("; ")
      }${
        rescored.length ? `. Re-scored with fresh noise: ${rescored.join("; ")}` : ""
      }. Command: \`${r.command}\``,
    );
  }

  // Spec §7: per image, the adaptive attack must break whatever a transfer attack broke (the
  // adaptive subset is a prefix of the transfer subset, same seed), and the number to quote is
  // the worst case over both.
  const cross: string[] = [];
  const worst: string[] = [];
  for (const a of reports.filter((x) => x.r.mode === "adaptive")) {
    for (const t of reports.filter((x) => x.r.mode === "transfer")) {
      if ((a.r.target.adapter?.id ?? null) !== (t.r.target.adapter?.id ?? null)) continue;
      const m = a.r.n;
      for (const b of new Set(a.r.cells.map((c) => budget(c.key)))) {
        const ad = a.r.cells.filter((c) => budget(c.key) === b);
        const tr = t.r.cells.filter((c) => budget(c.key) === b);
        if (!tr.length) continue;
        const chk = transferNotStronger(survivesAll(ad, m), survivesAll(tr, m));
        const names = (cs: Cell[]) => cs.map((c) => attackName(c.key)).join(", ");
        cross.push(
          `- ${targetOf(a.r)} ${b}: ${chk.ok ? "✓" : "✗"} ${chk.name} (adaptive worst case over ${
            names(ad)
          } vs transfer ${names(tr)}, first ${m} images): ${chk.detail}`,
        );
        const all = survivesAll([...ad, ...tr], m).reduce((s, v) => s + v, 0);
        const sum = (u: Uint8Array) => u.reduce((s, v) => s + v, 0);
        worst.push(
          `| ${targetOf(a.r)} | ${b} | ${m} | ${pct(all / m)} ${ci(wilson(all, m))} | ${
            pct(sum(survivesAll(tr, m)) / m)
          } | ${pct(sum(survivesAll(ad, m)) / m)} | ${names(tr)} + ${names(ad)} |`,
        );
      }
    }
  }

  // The grid the issue asks for, per mode, against what the reports hold (base DC only).
  const missing: string[] = [];
  for (const mode of ["transfer", "adaptive"] as const) {
    const have = new Set(
      reports.filter(({ r }) => r.mode === mode && !r.target.adapter).flatMap(({ r }) =>
        r.cells.map((c) => c.key)
      ),
    );
    const lack = DEFAULT_CELLS[mode].split(",").filter((k) => !have.has(k));
    if (lack.length) missing.push(`- ${mode}: ${lack.join(", ")}`);
  }

  const machine = reports[0]?.r.machine;
  return [
    "# Fashion-MNIST robustness table",
    "",
    `Generated by \`deno task cli bench table-md ${files.join(" ")}\`. Every row is labelled ` +
    "transfer (made on the surrogate) or adaptive (made through the classifier itself, with " +
    "its settings). Robust = right on the clean image and on its adversarial example; 95% " +
    "Wilson intervals. The attack budget is its model evaluations per image (an upper bound " +
    "for AutoAttack, which stops on broken points; a DC gradient costs timesteps × classes " +
    `UNet rows). Machine: ${machine?.os ?? "?"}, ${machine?.cpus ?? "?"} CPU cores, no GPU.`,
    "",
    ...lines,
    "",
    "## Worst case per image over every attack",
    "",
    "Neither column alone is a trustworthy robust accuracy when the adaptive attack is not a " +
    "superset of the transfer attacks; the worst case over both is the number to quote.",
    "",
    "| target | budget | n | robust to every attack [95% CI] | transfer alone | adaptive alone | attacks |",
    "|---|---|---|---|---|---|---|",
    ...worst,
    "",
    "## Checks across cells",
    "",
    ...notes,
    "",
    "## Transfer vs adaptive, per image",
    "",
    ...cross,
    "",
    "## Cells of the grid without a result",
    "",
    ...(missing.length ? missing : ["- none"]),
  ].join("\n");
}
