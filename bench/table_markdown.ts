/**
 * `deno task cli bench table-md A.json B.json …`: one markdown table from `bench table` reports
 * (transfer and adaptive side by side, each row labelled with its mode and settings).
 */
import { transferNotStronger } from "../lib/sanity.ts";

interface Cell {
  key: string;
  n: number;
  dc_robust_accuracy: number;
  ci95: [number, number];
  source_robust_accuracy: number;
  sanity?: { name: string; ok: boolean }[];
  attack: { steps?: number; version?: string };
  dc_robust_flags: number[];
}
interface Report {
  mode: string;
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
}

const pct = (x: number) => (x * 100).toFixed(1);
const ci = (c: [number, number]) => `[${pct(c[0])}, ${pct(c[1])}]`;

export async function tableMarkdown(files: string[]) {
  const lines = [
    "| mode | target | attack @ budget | n | DC robust [95% CI] | source's own robust | cell checks |",
    "|---|---|---|---|---|---|---|",
  ];
  const notes: string[] = [];
  for (const f of files) {
    const r: Report = JSON.parse(await Deno.readTextFile(f));
    const target = r.target.adapter ? `TMDC (adapter step ${r.target.adapter.step})` : "DC";
    const how = r.mode === "transfer"
      ? "transfer from surrogate"
      : `adaptive (${r.source.timesteps?.length} timesteps × all classes, fixed noise, scale ${r.source.logit_scale})`;
    lines.push(
      `| ${how} | ${target} | clean | ${r.n} | ${pct(r.clean.dc_accuracy)} ${
        ci(r.clean.dc_ci95)
      } | surrogate ${pct(r.clean.surrogate_accuracy)} | |`,
    );
    for (const c of r.cells) {
      const checks = (c.sanity ?? []).map((s) => `${s.ok ? "✓" : "✗"} ${s.name}`).join("; ");
      lines.push(
        `| ${how} | ${target} | ${c.key} | ${c.n} | ${pct(c.dc_robust_accuracy)} ${ci(c.ci95)} | ${
          pct(c.source_robust_accuracy)
        } | ${checks} |`,
      );
    }
    notes.push(
      `- \`${f.split("/").pop()}\` (${how}, ${target}): ${
        r.sanity.map((s) => `${s.ok ? "✓" : "✗"} ${s.name} (${s.detail})`).join("; ")
      }. Command: \`${r.command}\``,
    );
  }
  // Spec §7: per image, the adaptive attack must break whatever a transfer attack broke
  // (same images: the adaptive subset is a prefix of the transfer subset, same seed).
  const reports = await Promise.all(
    files.map(async (f) => ({ f, r: JSON.parse(await Deno.readTextFile(f)) as Report })),
  );
  const cross: string[] = [];
  for (const a of reports.filter((x) => x.r.mode === "adaptive")) {
    for (const t of reports.filter((x) => x.r.mode === "transfer")) {
      if ((a.r.target.adapter?.id ?? null) !== (t.r.target.adapter?.id ?? null)) continue;
      const budget = (k: string) => k.split("@")[1];
      for (const b of new Set(a.r.cells.map((c) => budget(c.key)))) {
        const tr = t.r.cells.filter((c) => budget(c.key) === b);
        if (!tr.length) continue;
        const m = a.r.n;
        const worst = (cs: Cell[]) =>
          Uint8Array.from({ length: m }, (_, i) => cs.every((c) => c.dc_robust_flags[i]) ? 1 : 0);
        const chk = transferNotStronger(
          worst(a.r.cells.filter((c) => budget(c.key) === b)),
          worst(tr),
        );
        cross.push(
          `- ${b}: ${chk.ok ? "✓" : "✗"} ${chk.name} (adaptive worst case over ${
            a.r.cells.filter((c) => budget(c.key) === b).map((c) => c.key.split("@")[0]).join(", ")
          } vs transfer ${
            tr.map((c) => c.key.split("@")[0]).join(", ")
          }, first ${m} images): ${chk.detail}`,
        );
      }
    }
  }
  console.log(
    [
      ...lines,
      "",
      "Checks across cells:",
      "",
      ...notes,
      "",
      "Transfer vs adaptive, per image:",
      "",
      ...cross,
    ]
      .join("\n"),
  );
}
