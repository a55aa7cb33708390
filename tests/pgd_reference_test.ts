/** Spec §8 level 2: FGSM and PGD without random start against torchattacks on a linear model. */
import { join } from "node:path";
import { assert_ } from "./assert.ts";
import { fgsm } from "../lib/attacks/fgsm.ts";
import { pgd } from "../lib/attacks/pgd.ts";
import { PortableRandom } from "../lib/rng.ts";
import { FIXTURES } from "./helpers.ts";
import { linearOracle } from "./linear_oracle.ts";

const fx = JSON.parse(await Deno.readTextFile(join(FIXTURES, "pgd_reference.json")));

for (const c of fx.cases) {
  Deno.test(`${c.attack} ${c.norm} ε=${c.eps} equals torchattacks`, async () => {
    const o = linearOracle(fx.W, fx.b, 10, 64);
    const x = Float32Array.from(fx.x);
    const y = Int32Array.from(fx.y);
    const adv = c.attack === "fgsm" ? await fgsm(o, x, y, { eps: c.eps }) : await pgd(o, x, y, {
      norm: c.norm,
      eps: c.eps,
      alpha: c.alpha,
      steps: c.steps,
      randomStart: false,
    }, new PortableRandom(0));
    let worst = 0;
    for (let i = 0; i < adv.length; i++) worst = Math.max(worst, Math.abs(adv[i] - c.adv[i]));
    assert_(worst < 1e-5, `images differ by ${worst}`);
  });
}
