/**
 * The adaptive table's arithmetic: the combined worst case per image over attack families (on
 * the largest exact report's images, a smaller family named as left out, never shrinking the
 * row) and the paper's paired ablation (folds, discordant images, sign test).
 */
import { combineSources, pairedAblation } from "../bench/exact_report.ts";
import { assertEquals } from "./assert.ts";

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
