/**
 * The adaptive table's arithmetic: the combined worst case per image over attack families (on
 * the largest exact report's images, a smaller family named as left out, never shrinking the
 * row) and the paper's paired ablation (folds, discordant images, sign test).
 */
import { join } from "node:path";
import { combineSources, exactReport, pairedAblation } from "../bench/exact_report.ts";
import { assertEquals, assertRejects } from "./assert.ts";

const src = (
  attack: string,
  flags: number[],
  exact = true,
  system = "DC (default, fixed seed)",
) => ({
  system,
  budget: "linf 0.1",
  attack,
  flags,
  exact,
});

Deno.test("exact report: worst case over families is robust only where every family is", () => {
  const [c] = combineSources([
    src("exact", [1, 1, 0, 1]),
    src("gpu", [1, 0, 1, 1, 0, 0, 1, 1], false),
    src("old", [0, 1], false),
    src("tmdc", [0, 0, 0, 0], true, "TMDC (x, fixed seed)"),
  ]);
  assertEquals(c.n, 4);
  assertEquals(c.flags, [1, 0, 0, 1]);
  assertEquals(c.worst.robust, 2);
  assertEquals(c.attacks, ["exact", "gpu"]);
  assertEquals(c.left_out, ["old (n = 2 only)"]);
});

Deno.test("exact report: a group without two sources or without an exact report is no row", () => {
  assertEquals(combineSources([src("exact", [1, 1])]), []);
  assertEquals(combineSources([src("gpu", [1, 1], false), src("old", [1, 0], false)]), []);
});

Deno.test("exact report: the paired ablation counts discordant images on the common images", () => {
  const dc = [1, 0, 0, 1, 0, 1, 0, 0, 0, 0];
  const tm = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1]; // two extra images: ignored
  const a = pairedAblation("linf 0.1", dc, tm);
  assertEquals(a.n, 10);
  assertEquals([a.dc.robust, a.tmdc.robust], [3, 5]);
  assertEquals([a.paired.tmdc_only, a.paired.dc_only], [3, 1]);
  assertEquals(a.paired.sign_test_p, 0.625); // 2·P(X ≤ 1), X ~ Bin(4, 1/2) = 2·5/16
  assertEquals(a.dc.folds, [1, 0, 0, 0.5, 0]); // fold k = images i ≡ k mod 5
});

Deno.test("exact report: TMDC is paired with the DC run under the same attack, not another", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fig = (flags: number[]) => ({
      robust: flags.reduce((a, v) => a + v, 0),
      accuracy: flags.reduce((a, v) => a + v, 0) / flags.length,
      ci95: [0, 1],
    });
    const report = (adapter: string | null, attacks: string[], flags: number[]) => ({
      split: "test",
      deployment: "fixed seed",
      n: flags.length,
      config: { norm: "linf", eps: 0.1, iters: 25, pairs: 4, eot: 1, attacks, seed: 0, adapter },
      clean: fig(flags),
      transfer: [fig(flags)],
      levels: [1, 2].map((m) => ({
        ...fig(flags),
        budget_multiplier: m,
        attack_unet_calls_per_attacked_image: 1,
      })),
      saturation: { saturated: true, reported_level: 2, note: "" },
      worst_case: fig(flags),
      broken_only_by_transfer: { images: [] },
      worst_flags: flags,
    });
    const files = {
      weak: report(null, ["apgd-ce"], [1, 1, 1, 1]), // another attack on the DC: never the pair
      dc: report(null, ["apgd-ce", "apgd-dlr"], [1, 0, 0, 0]),
      tm: report("abc", ["apgd-ce", "apgd-dlr"], [1, 1, 1, 0]),
    };
    for (const [k, v] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, `${k}.json`), JSON.stringify(v));
    }
    await Deno.mkdir(join(dir, "paper"));
    await Deno.writeTextFile(join(dir, "paper", "cells.json"), JSON.stringify({ cells: {} }));
    await exactReport({
      exact: ["weak", "dc", "tm"].map((k) => join(dir, `${k}.json`)),
      labels: ["abc=the adapter"],
      "paper-state": join(dir, "paper"),
      baselines: [],
      md: join(dir, "t.md"),
      json: join(dir, "t.json"),
    }, []);
    const out = JSON.parse(await Deno.readTextFile(join(dir, "t.json")));
    assertEquals(out.cpu_ablation.length, 1);
    assertEquals(out.cpu_ablation[0].system, "TMDC (the adapter, fixed seed)");
    assertEquals([out.cpu_ablation[0].dc.robust, out.cpu_ablation[0].tmdc.robust], [1, 3]);
    assertEquals(out.cpu_ablation[0].paired.tmdc_only, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exact report: an old-oracle report joins the worst case of the system it attacked, or is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fig = (k: number, n: number) => ({ robust: k, accuracy: k / n, ci95: [0, 1] });
    const exact = (adapter: string | null, flags: number[]) => ({
      split: "test",
      deployment: "fixed seed",
      n: flags.length,
      config: {
        norm: "linf",
        eps: 0.1,
        iters: 25,
        pairs: 4,
        eot: 1,
        attacks: ["apgd-ce"],
        seed: 0,
        adapter,
        bundle: "b@1",
        dc_settings: { g: 1 },
      },
      clean: fig(4, 4),
      transfer: [fig(4, 4)],
      levels: [1, 2].map((m) => ({
        ...fig(3, 4),
        budget_multiplier: m,
        attack_unet_calls_per_attacked_image: 1,
      })),
      saturation: { saturated: true, reported_level: 2, note: "" },
      worst_case: fig(3, 4),
      broken_only_by_transfer: { images: [] },
      worst_flags: flags,
    });
    const old = (adapter: unknown, flags: number[], settings = { g: 1 }) => ({
      command: "bench table",
      seed: 0,
      target: { kind: "dc", bundle: "b@1", adapter, settings },
      cells: [{
        attack: { attack: "pgd", steps: 10, norm: "linf", eps: 0.1 },
        dc_robust_flags: flags,
      }],
    });
    const files: Record<string, unknown> = {
      dc: exact(null, [1, 1, 1, 0]),
      tm: exact("abc", [1, 1, 1, 0]),
      // bench table records the adapter as { id, step, run }
      oldTm: old({ id: "abc", step: 250, run: "imported" }, [0, 1, 1, 1]),
      oldOther: old("zzz", [1, 1, 1, 1]),
      oldSettings: old(null, [1, 1, 1, 1], { g: 2 }),
    };
    for (const [k, v] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, `${k}.json`), JSON.stringify(v));
    }
    await Deno.mkdir(join(dir, "paper"));
    await Deno.writeTextFile(join(dir, "paper", "cells.json"), JSON.stringify({ cells: {} }));
    const run = (oldAdaptive: string) =>
      exactReport({
        exact: ["dc", "tm"].map((k) => join(dir, `${k}.json`)),
        labels: ["abc=the adapter"],
        "old-adaptive": [join(dir, `${oldAdaptive}.json`)],
        "paper-state": join(dir, "paper"),
        baselines: [],
        md: join(dir, "t.md"),
        json: join(dir, "t.json"),
      }, []);
    await run("oldTm");
    const out = JSON.parse(await Deno.readTextFile(join(dir, "t.json")));
    const tm = out.combined.find((c: { system: string }) => c.system.startsWith("TMDC"));
    assertEquals(tm.system, "TMDC (the adapter, fixed seed)");
    assertEquals(tm.worst.robust, 2); // [1,1,1,0] and [0,1,1,1]
    assertEquals(out.combined.some((c: { system: string }) => c.system.startsWith("DC")), false);
    for (const bad of ["oldOther", "oldSettings"]) {
      await assertRejects(() => run(bad), undefined, "not a fixed-seed system of the exact rows");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exact report: at n, groups of two sources that long combine on their first n images", () => {
  const c = combineSources([
    src("gpu grid", [1, 1, 0, 1, 1, 1], false),
    src("gpu real", [1, 0, 1, 1, 1, 1, 1, 1], false),
    src("exact", [1, 1, 1], true), // too short: left out
    src("gpu real", [1, 1, 1, 1], false, "TMDC (x, fixed seed)"), // alone at that n: no row
  ], 6);
  assertEquals(c.length, 1);
  assertEquals(c[0].flags, [1, 0, 0, 1, 1, 1]);
  assertEquals(c[0].attacks, ["gpu grid", "gpu real"]);
  assertEquals(c[0].left_out, ["exact (n = 3 only)"]);
});

Deno.test("exact report: GPU runs pair and build curves only within one classifier and bookkeeping", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const real = "no-grad calls lift the real DC's label to the top";
    const level = (
      adapter: string | null,
      bookkeeping: string | undefined,
      m: number,
      robust: number[],
    ) => ({
      bundle: adapter ? "b-lora@1" : "b@1",
      adapter,
      ...(bookkeeping ? { bookkeeping } : {}),
      n: robust.length,
      pairs_per_gradient_call: 8,
      cells: [{
        norm: "linf",
        eps: 0.1,
        budget_multiplier: m,
        iterations: 100 * m,
        robust,
        stages: [{ attack: "apgd-ce", unet_rows_per_attacked_image: { grad: 1, nograd: 1 } }],
      }],
    });
    const recheck = (adapter: string | null, report: string, robust: number[]) => ({
      n: robust.length,
      adapter,
      attack_run: { report: join(dir, report), machine: { device: "H100" } },
      clean: { robust: [1, 1, 1, 1] },
      cells: [{
        norm: "linf",
        eps: 0.1,
        transfer: [{ robust: [1, 1, 1, 1] }],
        exact_ts: { robust },
        worst_case: { robust },
        disagreements: [],
        broken_only_by_transfer: [],
      }],
    });
    const files: Record<string, unknown> = {
      "dc-grid-x1": level(null, undefined, 1, [1, 1, 1, 0]),
      "dc-grid-x2": level(null, undefined, 2, [0, 1, 1, 0]),
      "dc-real-x1": level(null, real, 1, [1, 0, 0, 0]),
      "tm-real-x1": level("/dev/a/r4/step-250.bin", real, 1, [1, 1, 0, 0]),
      "tm-other-x2": level("/dev/a/r16/step-250.bin", real, 2, [0, 0, 0, 0]), // another adapter
      "tm-real-x2": level("/dev/a/r4/step-250.bin", real, 2, [1, 0, 0, 0]), // the DC has no ×2
      "re-dc-grid": recheck(null, "dc-grid-x1.json", [1, 1, 1, 0]),
      // a newer recheck names its run's classifier and books itself: no report file needed
      "re-dc-real": {
        ...recheck(null, "gone.json", [1, 0, 0, 0]),
        attack_run: {
          report: "/elsewhere/gone.json",
          machine: {},
          bundle: "b@1",
          adapter: null,
          bookkeeping: real,
        },
      },
      "re-tm-real": recheck("/abs/runs/r4/step-250.bin", "tm-real-x1.json", [1, 1, 0, 0]),
    };
    for (const [k, v] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, `${k}.json`), JSON.stringify(v));
    }
    await Deno.mkdir(join(dir, "paper"));
    await Deno.writeTextFile(join(dir, "paper", "cells.json"), JSON.stringify({ cells: {} }));
    await exactReport({
      exact: [],
      recheck: ["re-dc-grid", "re-dc-real", "re-tm-real"].map((k) => join(dir, `${k}.json`)),
      "gpu-levels": [
        "dc-grid-x1",
        "dc-grid-x2",
        "dc-real-x1",
        "tm-real-x1",
        "tm-other-x2",
        "tm-real-x2",
      ].map((k) => join(dir, `${k}.json`)),
      labels: ["runs/r4/step-250.bin=r4"],
      "paper-state": join(dir, "paper"),
      baselines: [],
      md: join(dir, "t.md"),
      json: join(dir, "t.json"),
    }, []);
    const out = JSON.parse(await Deno.readTextFile(join(dir, "t.json")));
    const [grid, realDc, tm] = out.n128.rows;
    assertEquals(grid.curve.split("; ").length, 2); // its own ×1 and ×2
    assertEquals(grid.worstFlags, [0, 1, 1, 0]);
    assertEquals([realDc.bookkeeping, realDc.curve.split("; ").length], ["real DC", 1]);
    assertEquals([tm.system, tm.curve.split("; ").length], ["TMDC (r4, fixed seed)", 2]);
    assertEquals(tm.worstFlags, [1, 0, 0, 0]); // its ×2 broke image 1
    assertEquals(out.n128.ablation.length, 1);
    const ab = out.n128.ablation[0];
    assertEquals(ab.dc.robust, 1); // the real-bookkeeping DC, not the grid one
    // only the level both ran: the TMDC's ×2 (which the DC never met) stays out of the pairing
    assertEquals([ab.levels, ab.tmdc.robust, ab.paired.tmdc_only], [["×1 apgd-ce"], 2, 1]);
    // the DC's two bookkeepings are two families of one worst case at n = 4
    assertEquals(out.combined_n128.length, 1);
    assertEquals(out.combined_n128[0].worst.robust, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exact report: a budget level on fewer images than the re-check is refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const robust4 = [1, 1, 0, 0];
    await Deno.writeTextFile(
      join(dir, "re.json"),
      JSON.stringify({
        n: 4,
        adapter: null,
        attack_run: { report: "x", machine: {}, bundle: "b@1", adapter: null },
        clean: { robust: robust4 },
        cells: [{
          norm: "linf",
          eps: 0.1,
          transfer: [{ robust: robust4 }],
          exact_ts: { robust: robust4 },
          worst_case: { robust: robust4 },
          disagreements: [],
          broken_only_by_transfer: [],
        }],
      }),
    );
    const cell = { norm: "linf", eps: 0.1, budget_multiplier: 2, iterations: 200, robust: [1, 1] };
    await Deno.writeTextFile(
      join(dir, "x2.json"),
      JSON.stringify({
        bundle: "b@1",
        adapter: null,
        n: 2,
        pairs_per_gradient_call: 8,
        cells: [{ ...cell, stages: [] }],
      }),
    );
    await Deno.mkdir(join(dir, "paper"));
    await Deno.writeTextFile(join(dir, "paper", "cells.json"), JSON.stringify({ cells: {} }));
    const err = await exactReport({
      exact: [],
      recheck: [join(dir, "re.json")],
      "gpu-levels": [join(dir, "x2.json")],
      "paper-state": join(dir, "paper"),
      baselines: [],
      md: join(dir, "t.md"),
      json: join(dir, "t.json"),
    }, []).then(() => "", (e) => String(e));
    assertEquals(err.includes("covers only 2 images"), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
