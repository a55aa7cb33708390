/** AutoAttack on the real surrogate bundle and real Fashion-MNIST images: invariants and sanity checks. */
import { join } from "node:path";
import { assert_, assertEquals, assertThrows } from "./assert.ts";
import { autoAttack, resolveAttacks } from "../lib/attacks/autoattack.ts";
import { classifierOracle } from "../lib/attacks/oracle.ts";
import { lpDistance } from "../lib/attacks/projections.ts";
import { gather, loadTest, seededSubset } from "../lib/fashion_mnist.ts";
import { OnnxClassifier } from "../gpu-worker/onnx_model.ts";
import { loadClassifierBundle } from "../lib/bundle.ts";
import { REPO } from "./helpers.ts";

const b = await loadClassifierBundle(join(REPO, "models", "resnet14-fmnist"));
const surrogate = new OnnxClassifier(b, {
  threads: 1,
});
const o = classifierOracle(surrogate);
const test = await loadTest(REPO);
const set = gather(test, seededSubset(test.n, 16, 0));
const shape = { channels: 1, height: 28, width: 28 };
const QUICK = [
  { name: "apgd-ce" as const, nIter: 10, nRestarts: 1 },
  { name: "apgd-t" as const, nIter: 10, nRestarts: 1, nTargetClasses: 3 },
  { name: "fab-t" as const, nIter: 10, nRestarts: 1, nTargetClasses: 3 },
  { name: "square" as const, nQueries: 100, nRestarts: 1 },
];

for (const [norm, eps] of [["linf", 0.05], ["l2", 1.0]] as const) {
  Deno.test(`AutoAttack (custom, short) ${norm} ε=${eps}: cumulative accuracy falls, every point valid`, async () => {
    const r = await autoAttack(o, set.images, set.labels, {
      norm,
      eps,
      version: "custom",
      attacks: QUICK,
      seed: 0,
      shape,
    });
    assert_(r.cleanAccuracy >= 0.75, `surrogate clean accuracy ${r.cleanAccuracy}`);
    let prev = r.cleanAccuracy;
    for (const p of r.perAttack) {
      assert_(p.robustAccuracy <= prev, "cumulative robust accuracy must not increase");
      prev = p.robustAccuracy;
    }
    assert_(
      r.robustAccuracy < r.cleanAccuracy,
      "the surrogate is undefended: the attacks must break something",
    );
    const z = await o.logits(r.xAdv, set.n);
    for (let i = 0; i < set.n; i++) {
      const a = r.xAdv.subarray(i * 784, (i + 1) * 784);
      const x = set.images.subarray(i * 784, (i + 1) * 784);
      assert_(lpDistance(norm, a, x) <= eps + 1e-6, "outside the ball");
      assert_(a.every((v) => v >= 0 && v <= 1 && !Number.isNaN(v)), "outside the box");
      let best = 0;
      for (let j = 1; j < 10; j++) if (z[i * 10 + j] > z[i * 10 + best]) best = j;
      if (r.cleanCorrect[i] && !r.robust[i]) {
        assert_(best !== set.labels[i], "a broken point must be misclassified");
      }
      if (r.robust[i]) {
        assertEquals(Array.from(a), Array.from(x), "unbroken points are returned clean");
      }
    }
  });
}

Deno.test("sanity: at Linf ε = 1 every image is reachable, robust accuracy is 0", async () => {
  const r = await autoAttack(o, set.images, set.labels, {
    norm: "linf",
    eps: 1,
    version: "custom",
    attacks: [{ name: "apgd-ce", nIter: 20, nRestarts: 1 }, {
      name: "apgd-t",
      nIter: 20,
      nRestarts: 1,
      nTargetClasses: 3,
    }],
    seed: 0,
    shape,
  });
  assertEquals(r.robustAccuracy, 0);
});

Deno.test("AutoAttack configurations are validated", () => {
  assertThrows(
    () => resolveAttacks({ norm: "linf", eps: 0.1, version: "custom", seed: 0, shape }, 10),
    RangeError,
    "needs a list",
  );
  assertThrows(
    () =>
      resolveAttacks({
        norm: "linf",
        eps: 0.1,
        version: "standard",
        attacks: QUICK,
        seed: 0,
        shape,
      }, 10),
    RangeError,
    "not both",
  );
  assertThrows(
    () => resolveAttacks({ norm: "linf", eps: 0.1, version: "standard", seed: 0, shape }, 3),
    RangeError,
    "apgd-t",
  );
  assertEquals(
    resolveAttacks({ norm: "l2", eps: 0.5, version: "plus", seed: 0, shape }, 10).map((a) =>
      a.name
    ),
    [
      "apgd-ce",
      "apgd-dlr",
      "fab",
      "square",
      "apgd-t",
      "fab-t",
    ],
  );
});
