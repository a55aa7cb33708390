import { assert_ } from "./assert.ts";
import { type Cell, renderTable, type Report } from "../bench/table_markdown.ts";
import { wilson } from "../lib/stats.ts";

const cell = (key: string, flags: number[], sanity: Cell["sanity"] = []): Cell => {
  const r = flags.reduce((s, v) => s + v, 0);
  return {
    key,
    n: flags.length,
    dc_robust_accuracy: r / flags.length,
    ci95: wilson(r, flags.length),
    source_robust_accuracy: 0,
    attack: {},
    dc_robust_flags: flags,
    sanity,
  };
};
const report = (mode: Report["mode"], cells: Cell[]): Report => ({
  mode,
  n: cells[0].n,
  command: `bench table --mode ${mode}`,
  clean: { dc_accuracy: 1, dc_ci95: [0, 1], surrogate_accuracy: 1, surrogate_ci95: [0, 1] },
  source: mode === "adaptive" ? { kind: "dc", timesteps: [1, 2], logit_scale: 100 } : {
    kind: "surrogate",
  },
  target: { adapter: null },
  cells,
  sanity: [],
});

Deno.test("robustness table: worst case per image over transfer and adaptive, and missing cells", () => {
  // 8 images. Transfer breaks 0, 1; adaptive breaks 1, 2, 3 → robust to every attack: 4..7.
  const transfer = report("transfer", [
    cell("fgsm@linf:0.05", [0, 1, 1, 1, 1, 1, 1, 1]),
    cell("pgd:40@linf:0.05", [1, 0, 1, 1, 1, 1, 1, 1]),
  ]);
  const adaptive = report("adaptive", [
    cell("pgd:10@linf:0.05", [1, 0, 0, 1, 1, 1, 1, 1], [{
      name: "fixed-noise accuracy not above 10 fresh noise draws",
      ok: true,
      detail: "fixed 50.0%; fresh mean 55.0%",
    }]),
    cell("apgd-ce:10@linf:0.05", [1, 1, 1, 0, 1, 1, 1, 1]),
  ]);
  const md = renderTable([{ f: "t.json", r: transfer }, { f: "a.json", r: adaptive }]);
  const [lo, hi] = wilson(4, 8).map((v) => (v * 100).toFixed(1));
  assert_(
    md.includes(`| DC | linf:0.05 | 8 | 50.0 [${lo}, ${hi}] | 75.0 | 62.5 |`),
    "worst-case row",
  );
  // Image 0 falls only to transfer: flagged by index.
  assert_(md.includes("1 points broken only by transfer: 0"), "transfer-only point flagged");
  assert_(md.includes("fresh mean 55.0%"), "fresh-noise re-scoring reported");
  // Cells of the grid not in these reports are listed per mode.
  assert_(/- transfer: .*autoattack:plus@linf:0\.05/.test(md), "missing transfer cells");
  assert_(/- adaptive: .*pgd:10@l2:1\.5/.test(md), "missing adaptive cells");
  assert_(!/- adaptive: [^\n]*pgd:10@linf:0\.05,/.test(md), "present cells not listed missing");
});
