/**
 * `deno task cli bench exact-report`: issue 13's table from the JSON the benchmarks wrote —
 * DC (fixed seed: exact white-box; secret seed: EOT), the chosen TMDC (exact white-box) and the
 * PGD-AT baselines (white-box, from `bench paper`'s per-image flags on the same first images of
 * the seeded test subset), each with transfer, adaptive, worst case per image, its interval,
 * its budget and whether the budget saturated.
 */
import { join } from "node:path";
import { wilson } from "../lib/stats.ts";
import { writeReport } from "./common.ts";

interface Fig {
  robust: number;
  accuracy: number;
  ci95: [number, number];
}
interface ExactJson {
  command?: string;
  n: number;
  mode?: string;
  config: {
    norm: string;
    eps: number;
    iters: number;
    pairs: number;
    eot: number;
    attacks: string[];
    noise?: string;
  };
  clean: Fig;
  transfer: Fig[];
  levels: (Fig & { budget_multiplier: number; attack_unet_calls_per_attacked_image: number })[];
  saturation: { saturated: boolean; reported_level?: number; note: string };
  worst_case: Fig;
  broken_only_by_transfer: { images: unknown[] };
  deployment?: string;
  worst_flags?: number[];
}

export interface ExactReportOptions {
  exact: string[];
  "tm-study"?: string;
  "paper-state": string;
  baselines: string[];
  md: string;
  json: string;
}

const pct = (f: Fig, n: number) =>
  `${(100 * f.accuracy).toFixed(1)}% [${(100 * f.ci95[0]).toFixed(1)}, ${
    (100 * f.ci95[1]).toFixed(1)
  }] (${f.robust}/${n})`;
const budgetKey = (norm: string, eps: number) => `${norm} ${eps}`;

function exactRow(system: string, e: ExactJson, mode: string) {
  const last = e.levels.at(-1)!;
  return {
    system,
    budget: budgetKey(e.config.norm, e.config.eps),
    mode,
    n: e.n,
    clean: e.clean,
    transfer: e.transfer.at(-1)!,
    adaptive: last,
    worst: e.worst_case,
    curve: e.levels.map((l) =>
      `×${l.budget_multiplier}: ${(100 * l.accuracy).toFixed(1)}% (${
        Math.round(l.attack_unet_calls_per_attacked_image)
      } UNet calls/img)`
    ).join("; "),
    saturated: e.saturation.saturated
      ? `yes, at ×${e.saturation.reported_level}`
      : `no (${e.saturation.note})`,
    attack_budget: `APGD (${e.config.attacks.join(", ")}) ${e.config.iters} it × levels, ` +
      `${e.config.pairs} pairs/step, EOT ${e.config.eot}, starts: 2 transferred`,
    broken_only_by_transfer: e.broken_only_by_transfer.images.length,
  };
}

export async function exactReport(o: ExactReportOptions, argv: readonly string[]) {
  const rows: ReturnType<typeof exactRow>[] = [];
  // per (deployment, budget): every report's per-image worst case, for the combined row
  const groups = new Map<string, { flags: number[][]; n: number; attacks: string[] }>();
  for (const f of o.exact) {
    const e: ExactJson = JSON.parse(await Deno.readTextFile(f));
    const deployment = e.deployment ?? (e.mode?.includes("secret") ? "secret seed" : "fixed seed");
    const attack = e.config.noise === "fresh"
      ? `EOT ${e.config.eot} over fresh noise`
      : "exact white-box (its own noise)";
    rows.push(exactRow(`DC (default, ${deployment})`, e, attack));
    if (e.worst_flags) {
      const key = `${deployment}|${budgetKey(e.config.norm, e.config.eps)}`;
      const g = groups.get(key) ?? { flags: [], n: e.n, attacks: [] };
      g.flags.push(e.worst_flags);
      g.attacks.push(attack);
      groups.set(key, g);
    }
  }
  const combined = [...groups].filter(([, g]) => g.flags.length > 1).map(([key, g]) => {
    const [deployment, budget] = key.split("|");
    const flags = Array.from(
      { length: g.n },
      (_, i): number => g.flags.every((f) => f[i] === 1) ? 1 : 0,
    );
    const k = flags.reduce((a, v) => a + v, 0);
    return {
      system: `DC (default, ${deployment})`,
      budget,
      attacks: g.attacks,
      n: g.n,
      worst: { robust: k, accuracy: k / g.n, ci95: wilson(k, g.n) } as Fig,
    };
  });
  if (o["tm-study"]) {
    const s = JSON.parse(await Deno.readTextFile(o["tm-study"]));
    rows.push(exactRow(
      `TMDC (${s.choice.chosen.config} @ ${s.choice.chosen.step})`,
      {
        ...s.test.tmdc,
        config: { ...s.study.exact, norm: s.study.norm, eps: s.study.eps, eot: 1 },
      },
      "fixed seed: exact white-box",
    ));
  }
  // PGD-AT baselines: worst case per image over bench paper's transfer + white-box cells.
  const state = JSON.parse(await Deno.readTextFile(join(o["paper-state"], "cells.json")));
  const n = rows[0]?.n ?? 32;
  const base = [];
  for (const b of o.baselines) {
    for (const [norm, eps] of [["linf", 0.05], ["linf", 0.1], ["l2", 1.5]] as const) {
      const cells = Object.values(
        state.cells as Record<string, {
          row: string;
          block: string;
          cell: string;
          flags: number[];
          attack: { norm: string; eps: number };
        }>,
      ).filter((c) =>
        c.row.startsWith(b) && c.attack.norm === norm && c.attack.eps === eps &&
        (c.block === "transfer" || c.block === "whitebox")
      );
      if (!cells.length) continue;
      const worst = Array.from(
        { length: n },
        (_, i) => cells.every((c) => c.flags[i] === 1) ? 1 : 0,
      );
      const wb = cells.filter((c) => c.block === "whitebox");
      const wbFlags = Array.from(
        { length: n },
        (_, i) => wb.every((c) => c.flags[i] === 1) ? 1 : 0,
      );
      const fig = (f: number[]): Fig => {
        const k = f.reduce((a, v) => a + v, 0);
        return { robust: k, accuracy: k / n, ci95: wilson(k, n) };
      };
      base.push({
        system: cells[0].row,
        budget: budgetKey(norm, eps),
        mode: "white-box (its own gradients)",
        n,
        whitebox: fig(wbFlags),
        worst: fig(worst),
        attacks: wb.map((c) => c.cell).join(", "),
      });
    }
  }
  const md0 = [
    "# Adaptive attacks an expert accepts: DC, TMDC, PGD-AT (issue 13)",
    "",
    `Generated by \`deno task cli bench exact-report ${
      argv.join(" ")
    }\` from the JSON files named ` +
    "there. Images: the first n of the seeded Fashion-MNIST test subset (seed 0); intervals are " +
    "95% Wilson. Robust = right on the clean image and on every attack's point (worst case per " +
    "image). Machine: the project's 2-core CPU VM (no GPU lent).",
    "",
    "| system | budget | mode | n | clean | transfer | adaptive (last level) | worst case | budget curve | saturated | broken only by transfer |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.system} | ${r.budget} | ${r.mode} | ${r.n} | ${pct(r.clean, r.n)} | ${
        pct(r.transfer, r.n)
      } | ${pct(r.adaptive, r.n)} | **${
        pct(r.worst, r.n)
      }** | ${r.curve} | ${r.saturated} | ${r.broken_only_by_transfer} |`
    ),
    ...base.map((b) =>
      `| ${b.system} | ${b.budget} | ${b.mode} | ${b.n} | – | (in worst case) | ${
        pct(b.whitebox, b.n)
      } | **${pct(b.worst, b.n)}** | ${b.attacks} | fixed budgets (bench paper) | – |`
    ),
    "",
    "Attack budgets: " + [...new Set(rows.map((r) => r.attack_budget))].join("; ") + ".",
    "",
  ];
  const md = [
    ...md0,
    ...(combined.length
      ? [
        "Worst case per image over every attack run on the same deployment and budget:",
        "",
        "| system | budget | attacks | n | worst case |",
        "|---|---|---|---|---|",
        ...combined.map((c) =>
          `| ${c.system} | ${c.budget} | transfer + ${c.attacks.join(" + ")} | ${c.n} | **${
            pct(c.worst, c.n)
          }** |`
        ),
        "",
      ]
      : []),
  ].join("\n");
  await Deno.writeTextFile(o.md, md);
  await writeReport(o.json, { benchmark: "exact-report", rows, combined, baselines: base });
}
