/** FAB and FAB-T against fra31 (deterministic paths) and the closed form on a linear model. */
import { join } from "node:path";
import { assert_ } from "./assert.ts";
import { fab, fabSingleRun } from "../lib/attacks/fab.ts";
import { linearOracle } from "./linear_oracle.ts";
import { lpDistance } from "../lib/attacks/projections.ts";
import { PortableRandom } from "../lib/rng.ts";
import { FIXTURES } from "./helpers.ts";

const fx = JSON.parse(await Deno.readTextFile(join(FIXTURES, "fab_reference.json")));

for (const c of fx.cases) {
  Deno.test(`FAB${c.targeted ? "-T" : ""} ${c.norm} reproduces fra31 (no random numbers drawn)`, async () => {
    const o = linearOracle(fx.W, fx.b, 10, 64);
    const rng = {
      uniform: () => {
        throw new Error("no draws expected");
      },
      normal: () => {
        throw new Error("no draws expected");
      },
    };
    const { xAdv } = await fab(o, Float32Array.from(fx.x), Int32Array.from(fx.y), {
      norm: c.norm,
      eps: c.eps,
      nIter: c.n_iter,
      nRestarts: 1,
      targeted: c.targeted,
      nTargetClasses: c.n_target_classes,
    }, rng);
    let worst = 0;
    for (let i = 0; i < xAdv.length; i++) worst = Math.max(worst, Math.abs(xAdv[i] - c.adv[i]));
    assert_(worst < 1e-4, `adversarial examples differ by ${worst}`);
  });
}

Deno.test("untargeted FAB on a linear model finds the closed-form minimal perturbation (box inactive)", async () => {
  const rng = new PortableRandom(2);
  const k = 10;
  const d = 64;
  const W = Float64Array.from({ length: k * d }, () => rng.normal() * 0.5);
  const b = Float64Array.from({ length: k }, () => rng.normal() * 0.01);
  const n = 6;
  const x = Float32Array.from({ length: n * d }, () => 0.4 + 0.2 * rng.uniform()); // far from the box faces
  const o = linearOracle(W, b, k, d);
  const z = await o.logits(x, n);
  const y = Int32Array.from({ length: n }, (_, s) => {
    let best = 0;
    for (let j = 1; j < k; j++) if (z[s * k + j] > z[s * k + best]) best = j;
    return best;
  });
  for (const norm of ["linf", "l2"] as const) {
    const { adv, norms } = await fabSingleRun(
      o,
      x,
      y,
      { norm, eps: 1, nIter: 100, nRestarts: 1 },
      rng,
      { randomStart: false },
    );
    for (let s = 0; s < n; s++) {
      let closed = Infinity;
      for (let j = 0; j < k; j++) {
        if (j === y[s]) continue;
        let q = 0;
        for (let i = 0; i < d; i++) {
          const dw = W[j * d + i] - W[y[s] * d + i];
          q += norm === "linf" ? Math.abs(dw) : dw * dw;
        }
        q = norm === "linf" ? q : Math.sqrt(q);
        closed = Math.min(closed, Math.abs(z[s * k + j] - z[s * k + y[s]]) / q);
      }
      assert_(
        norms[s] >= closed * (1 - 1e-4) && norms[s] <= closed * 1.01,
        `${norm}: r* ${norms[s]} vs closed form ${closed}`,
      );
      assert_(
        Math.abs(
          lpDistance(norm, adv.subarray(s * d, (s + 1) * d), x.subarray(s * d, (s + 1) * d)) -
            norms[s],
        ) < 1e-5,
      );
    }
  }
});
