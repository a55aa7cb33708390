/** Spec §8 level 1: attack losses, schedules, Square's windows and eta, FAB and Lp projections. */
import { assert_, assertEquals, assertThrows } from "./assert.ts";
import { crossEntropy, dlr, dlrTargeted, margin } from "../lib/attacks/losses.ts";
import { apgdCheckpoints, apgdConstants } from "../lib/attacks/apgd_schedule.ts";
import {
  eta,
  pSelection,
  roundHalfEven,
  windowL2,
  windowLinf,
} from "../lib/attacks/square_schedule.ts";
import { fabProjection } from "../lib/attacks/fab_projection.ts";
import { lpDistance, projectL2, projectLinf } from "../lib/attacks/projections.ts";
import { PortableRandom } from "../lib/rng.ts";

const close = (a: number, b: number, tol = 1e-6) => assert_(Math.abs(a - b) <= tol, `${a} != ${b}`);

Deno.test("DLR, targeted DLR, CE and margin on the spec's vectors", () => {
  const z = [2, 1, 0.5, -1];
  close(dlr(z, 0).loss, -0.6666667);
  close(dlrTargeted(z, 0, 1).loss, -0.4444444);
  close(crossEntropy(z, 0).loss, 0.4951819);
  close(margin(z, 0), 1);
  close(dlr(z, 2).loss, 1.0);
  close(dlrTargeted(z, 2, 1).loss, 0.2222222);
  close(margin(z, 2), -1.5);
  const z10 = [3.2, -0.7, 1.9, 0.4, 2.5, -2.0, 0.0, 1.1, -0.3, 0.8];
  close(dlr(z10, 0).loss, -0.5384616);
  close(dlrTargeted(z10, 0, 4).loss, -0.4117647);
  close(crossEntropy(z10, 0).loss, 0.7607215);
  close(dlr(z10, 4).loss, 0.5384616);
  close(dlrTargeted(z10, 4, 2).loss, -0.3529412);
  close(dlr([1, 1, 1, 1], 2).loss, 0, 0);
  close(dlr(z10.map((v) => 7 * v + 3), 0).loss, dlr(z10, 0).loss);
});

Deno.test("loss gradients agree with central differences", () => {
  const z = [3.2, -0.7, 1.9, 0.4, 2.5, -2.0, 0.0, 1.1, -0.3, 0.8];
  const fns: [string, (v: number[]) => { loss: number; grad: Float64Array }][] = [
    ["ce", (v) => crossEntropy(v, 0)],
    ["dlr", (v) => dlr(v, 4)],
    ["dlrT", (v) => dlrTargeted(v, 0, 2)],
  ];
  for (const [name, f] of fns) {
    const g = f(z).grad;
    for (let j = 0; j < z.length; j++) {
      const h = 1e-6;
      const p = z.slice();
      const m = z.slice();
      p[j] += h;
      m[j] -= h;
      close((f(p).loss - f(m).loss) / (2 * h), g[j], 1e-5);
    }
    assert_(g.some((v) => v !== 0), name);
  }
});

Deno.test("APGD checkpoint schedules", () => {
  assertEquals(apgdConstants(100), { k0: 22, kMin: 6, dec: 3 });
  assertEquals(apgdCheckpoints(100), [21, 40, 56, 69, 79, 86, 92, 98]);
  assertEquals(apgdCheckpoints(1000), [219, 409, 569, 699, 799, 869, 929, 989]);
  assertEquals(apgdCheckpoints(10), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assertEquals(apgdCheckpoints(20).slice(0, 5), [3, 6, 8, 9, 10]);
  assertEquals(apgdCheckpoints(20).at(-1), 19);
  assertEquals(apgdCheckpoints(50).slice(0, 5), [10, 20, 29, 37, 44]);
  assertEquals(apgdCheckpoints(200), [43, 81, 113, 139, 159, 173, 185, 197]);
  assertEquals(apgdCheckpoints(5), [0, 1, 2, 3, 4]);
});

Deno.test("Square p schedule and window sides (AutoAttack settings, unrescaled)", () => {
  const at = [0, 11, 51, 201, 501, 1001, 2001, 4001];
  const sides = (h: number, f: typeof windowLinf) =>
    at.map((i) => f(pSelection(0.8, i, 5000, false), h, h));
  assertEquals(sides(32, windowLinf), [29, 20, 14, 10, 7, 5, 4, 3]);
  assertEquals(sides(32, windowL2), [29, 21, 15, 11, 7, 5, 5, 3]);
  assertEquals(sides(28, windowLinf), [25, 18, 13, 9, 6, 4, 3, 2]);
  assertEquals(sides(28, windowL2), [25, 19, 13, 9, 7, 5, 3, 3]);
  assertEquals(sides(224, windowLinf), [200, 142, 100, 71, 50, 35, 25, 18]);
  // rescaled (torchattacks' default): i ← ⌊i/5000·10000⌋ = 2i
  assertEquals(pSelection(0.8, 6, 5000, true), 0.4);
  assertEquals(pSelection(0.8, 4999, 5000, false), 0.8 / 128);
  assertEquals([
    roundHalfEven(2.5),
    roundHalfEven(3.5),
    roundHalfEven(0.5),
    roundHalfEven(1.5000001),
  ], [2, 4, 0, 2]);
});

Deno.test("Square eta(5) matches the reference matrix", () => {
  const want = [
    [0.04916, 0.15978, 0.15978, 0.15978, 0.04916],
    [0.04916, 0.15978, 0.60224, 0.15978, 0.04916],
    [-0.04559, -0.14817, -0.14817, -0.14817, -0.04559],
    [-0.04559, -0.14817, -0.55848, -0.14817, -0.04559],
    [-0.04559, -0.14817, -0.14817, -0.14817, -0.04559],
  ].flat();
  const e = eta(5, false);
  want.forEach((v, i) => close(e[i], v, 1e-5));
  const t = eta(5, true);
  close(t[1 * 5 + 3], e[3 * 5 + 1]);
  close(e.reduce((a, v) => a + v * v, 0), 1, 1e-12);
});

function bisectProjection(norm: "linf" | "l2", x: number[], w: number[], b: number): Float64Array {
  // Independent check: bisection on λ of the same reduction (the reference's method).
  let c = w.reduce((a, wi, i) => a + wi * x[i], -b);
  const s = c < 0 ? -1 : 1;
  c *= s;
  const room = x.map((xi, i) => (s * w[i] > 0 ? xi : 1 - xi));
  const delta = (lam: number) =>
    x.map((_, i) => {
      const wi = s * w[i];
      if (norm === "linf" ? wi === 0 : Math.abs(wi) <= 1e-8) return 0;
      return -Math.sign(wi) * Math.min(norm === "linf" ? lam : lam * Math.abs(wi), room[i]);
    });
  const red = (lam: number) => delta(lam).reduce((a, di, i) => a - s * w[i] * di, 0);
  let lo = 0;
  let hi = 1;
  while (red(hi) < c && hi < 1e12) hi *= 2;
  for (let k = 0; k < 200; k++) {
    const mid = (lo + hi) / 2;
    if (red(mid) < c) lo = mid;
    else hi = mid;
  }
  return Float64Array.from(delta(hi));
}

Deno.test("FAB projection: exact minimiser, on the plane, inside the box; infeasible → corner", () => {
  const rng = new PortableRandom(11);
  for (let trial = 0; trial < 200; trial++) {
    const d = 1 + Math.floor(rng.uniform() * 40);
    const x = Array.from({ length: d }, () => rng.uniform());
    const w = Array.from({ length: d }, () => (rng.uniform() < 0.15 ? 0 : rng.normal()));
    const scale = trial % 5 === 0 ? 50 : 1; // some planes lie outside the box
    const b = w.reduce((a, wi, i) => a + wi * x[i], 0) + rng.normal() * scale;
    for (const norm of ["linf", "l2"] as const) {
      const got = fabProjection(norm, x, w, b);
      const ref = bisectProjection(norm, x, w, b);
      got.forEach((v, i) => close(v, ref[i], 1e-5));
      got.forEach((v, i) => assert_(x[i] + v >= -1e-12 && x[i] + v <= 1 + 1e-12, "box"));
      const signed = w.reduce((a, wi, i) => a + wi * x[i], -b);
      const sg = signed < 0 ? -1 : 1;
      const cap = w.reduce((a, wi, i) => a + Math.abs(wi) * (sg * wi > 0 ? x[i] : 1 - x[i]), 0);
      const c = Math.abs(signed);
      const onPlane = Math.abs(w.reduce((a, wi, i) => a + wi * (x[i] + got[i]), -b));
      if (c <= cap * (1 - 1e-9)) {
        assert_(onPlane <= 1e-6 * (1 + Math.abs(b)), `residual ${onPlane}`);
      }
    }
  }
  // already on the plane
  assertEquals(Array.from(fabProjection("l2", [0.5, 0.5], [1, 1], 1)), [0, 0]);
});

Deno.test("Lp projections never leave the ball or the box", () => {
  const rng = new PortableRandom(5);
  for (let t = 0; t < 100; t++) {
    const x0 = Float32Array.from({ length: 50 }, () => rng.uniform());
    const v = Float32Array.from(x0, (x) => x + rng.normal() * 0.5);
    const eps = 0.01 + rng.uniform() * 0.5;
    const p = projectLinf(v.slice(), x0, eps);
    const q = projectL2(v.slice(), x0, eps);
    assert_(lpDistance("linf", p, x0) <= eps * (1 + 1e-6) + 1e-7);
    assert_(lpDistance("l2", q, x0) <= eps * (1 + 1e-6) + 1e-7);
    assert_([...p, ...q].every((u) => u >= 0 && u <= 1));
  }
});

Deno.test("FGM (L2 one step): δ = ε·∇CE/‖∇CE‖₂ away from the box; the registry refuses FGSM at L2", async () => {
  const { linearOracle } = await import("./linear_oracle.ts");
  const { fgsm } = await import("../lib/attacks/fgsm.ts");
  const { validateAttack, AttackConfigError } = await import("../lib/attacks/registry.ts");
  // 2 classes, 3 pixels at 0.5: the CE gradient is (p1 − 1)·(W0 − W1) for label 0
  const W = [1, 0, -1, 0, 2, 1];
  const o = linearOracle(W, [0, 0], 2, 3);
  const x = Float32Array.of(0.5, 0.5, 0.5);
  const out = await fgsm(o, x, Int32Array.of(0), { eps: 0.1, norm: "l2" });
  const d = Array.from(out, (v, i) => v - x[i]);
  const n = Math.hypot(...d);
  assert_(Math.abs(n - 0.1) <= 1e-6, `‖δ‖ = ${n}`);
  const g = [-(1 - 0), -(0 - 2), -(-1 - 1)]; // direction of −(W0 − W1)
  const gn = Math.hypot(...g);
  d.forEach((v, i) => assert_(Math.abs(v - 0.1 * g[i] / gn) <= 1e-6, `δ[${i}] = ${v}`));
  assertThrows(
    () => validateAttack({ attack: "fgsm", norm: "l2", eps: 0.5, seed: 0 }, 10, 1e6),
    AttackConfigError,
  );
});
