/**
 * Spec §8 level 2: Square with replayed randomness. fra31's `torch.rand` stream was
 * recorded (compiler/tmdc_compiler/make_attack_fixtures.py) on float64 linear models;
 * replaying it must reproduce the reference's adversarial examples.
 */
import { join } from "node:path";
import { assert_ } from "./assert.ts";
import { square } from "../lib/attacks/square.ts";
import type { GradientOracle, RandomSource } from "../lib/attacks/oracle.ts";
import { FIXTURES } from "./helpers.ts";

const fx = JSON.parse(await Deno.readTextFile(join(FIXTURES, "square_reference.json")));

function linear(W: number[], b: number[], k: number, d: number): GradientOracle {
  return {
    numClasses: k,
    size: d,
    stochastic: false,
    logits(x, n) {
      const z = new Float32Array(n * k);
      for (let s = 0; s < n; s++) {
        for (let j = 0; j < k; j++) {
          let a = b[j];
          for (let i = 0; i < d; i++) a += W[j * d + i] * x[s * d + i];
          z[s * k + j] = a;
        }
      }
      return Promise.resolve(z);
    },
    lossGrad: () => Promise.reject(new Error("Square needs no gradients")),
    vjp: () => Promise.reject(new Error("Square needs no gradients")),
  };
}

class Replay implements RandomSource {
  i = 0;
  constructor(readonly u: number[]) {}
  uniform(): number {
    if (this.i >= this.u.length) {
      throw new Error("replay exhausted: more draws than the reference made");
    }
    return this.u[this.i++];
  }
  normal(): number {
    throw new Error("Square draws no normals");
  }
}

for (const c of fx.cases) {
  Deno.test(`Square ${c.norm} (${c.channels} channel${c.channels > 1 ? "s" : ""}) reproduces fra31 with replayed randomness`, async () => {
    const d = c.channels * 64;
    const rng = new Replay(c.uniforms);
    const { xAdv, robust } = await square(
      linear(c.W, c.b, 10, d),
      { channels: c.channels, height: 8, width: 8 },
      Float32Array.from(c.x),
      Int32Array.from(c.y),
      {
        norm: c.norm,
        eps: c.eps,
        nQueries: c.n_queries,
        pInit: 0.8,
        nRestarts: 1,
        rescaleSchedule: false,
      },
      rng,
    );
    assert_(rng.i === c.uniforms.length, `consumed ${rng.i} of ${c.uniforms.length} draws`);
    let worst = 0;
    for (let i = 0; i < xAdv.length; i++) worst = Math.max(worst, Math.abs(xAdv[i] - c.adv[i]));
    assert_(worst < 1e-5, `adversarial examples differ by ${worst}`);
    assert_(
      robust.some((r) => r === 0),
      "the attack broke nothing: the fixture is too easy to be a test",
    );
  });
}
