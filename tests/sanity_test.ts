import { assert_, assertEquals } from "./assert.ts";
import {
  budgetMonotone,
  doublingStable,
  freshNoiseNotOptimistic,
  signTestP,
  singleStepNotStronger,
  transferNotStronger,
  unboundedBudget,
} from "../lib/sanity.ts";

Deno.test("sign test p-values", () => {
  assertEquals(signTestP(0, 0), 1);
  assert_(Math.abs(signTestP(0, 10) - 2 / 1024) < 1e-12);
  assert_(Math.abs(signTestP(5, 5) - 1) < 1e-12);
  assert_(Math.abs(signTestP(2, 8) - 0.109375) < 1e-9); // 2·P(X ≤ 2), X ~ Bin(10, ½) = 2·56/1024
});

Deno.test("sanity checks flag what they should", () => {
  assert_(
    budgetMonotone([{ eps: 0, robust: 0.9 }, { eps: 0.1, robust: 0.5 }, { eps: 0.05, robust: 0.7 }])
      .ok,
  );
  assert_(
    !budgetMonotone([{ eps: 0, robust: 0.9 }, { eps: 0.1, robust: 0.6 }, {
      eps: 0.05,
      robust: 0.5,
    }]).ok,
  );
  assert_(unboundedBudget(0).ok && !unboundedBudget(0.02).ok && unboundedBudget(0.08, 0.1).ok);
  const a = Uint8Array.from({ length: 100 }, (_, i) => (i < 50 ? 1 : 0));
  assert_(doublingStable(a, a).ok);
  const fewer = a.map((v, i) => (i < 20 ? 0 : v));
  assert_(!doublingStable(a, fewer).ok, "20 more points broken after doubling: not converged");
  const wb = Uint8Array.from({ length: 100 }, () => 1);
  const tr = wb.map((v, i) => (i === 3 ? 0 : v));
  assert_(!transferNotStronger(wb, tr).ok);
  assert_(transferNotStronger(tr, wb).ok);
  assert_(singleStepNotStronger(0.5, 0.4).ok && !singleStepNotStronger(0.3, 0.4).ok);
  // 16 images: fixed 80% vs fresh draws around 50% is optimistic; vs around 70% it is not.
  assert_(!freshNoiseNotOptimistic(0.8, Array(10).fill(0.5), 16).ok);
  assert_(freshNoiseNotOptimistic(0.75, Array(10).fill(0.7), 16).ok);
  assert_(freshNoiseNotOptimistic(0.5, Array(10).fill(0.75), 16).ok);
  assert_(!freshNoiseNotOptimistic(0.5, [], 16).ok);
});

Deno.test("evaluation reports: checks against sibling runs, and what is not run says what to submit", async () => {
  const { evaluationChecks } = await import("../lib/evaluation_checks.ts");
  const items = (robust: number[], dist = 0.05) =>
    robust.map((r, i) => ({ index: i, label: 1, cleanPred: 1, advPred: r ? 1 : 0, dist }));
  const pgd = (id: string, eps: number, robust: number[], mode = "adaptive", steps = 10) => ({
    id,
    mode: mode as "adaptive" | "transfer",
    attack: { attack: "pgd", norm: "linf", eps, steps },
    items: items(robust, eps),
  });
  const self = pgd("a", 0.05, [1, 1, 0, 0, 1, 0, 1, 0]);
  const alone = evaluationChecks(self, [], 784);
  assertEquals(alone.map((c) => c.status), [
    "passed",
    "not-run",
    "not-run",
    "not-run",
    "not-run",
  ]);
  assertEquals(alone[2].detail, "submit the same attack at linf ε = 1.00");

  const sibs = [
    pgd("b", 0.1, [1, 1, 1, 0, 1, 0, 1, 0]), // more robust at a larger ε: non-monotone
    pgd("c", 1, [0, 0, 0, 0, 0, 0, 0, 0]),
    pgd("d", 0.05, [1, 1, 0, 0, 1, 0, 1, 0], "adaptive", 20),
    pgd("e", 0.05, [0, 1, 1, 1, 1, 1, 1, 1], "transfer"), // transfer breaks point 0, adaptive does not
  ];
  const checks = evaluationChecks(self, sibs, 784);
  const by = Object.fromEntries(checks.map((c) => [c.name.split(" ")[0], c]));
  assertEquals(checks.find((c) => c.name.startsWith("accuracy"))!.status, "failed");
  assertEquals(checks.find((c) => c.name.includes("reaches"))!.status, "passed");
  assertEquals(checks.find((c) => c.name.startsWith("doubling"))!.status, "passed");
  const tr = checks.find((c) => c.name.startsWith("white-box"))!;
  assertEquals([tr.status, tr.against], ["failed", ["e"]]);
  assert_(by.perturbation.ok);

  const far = { ...self, items: items([1, 0], 0.2) };
  assertEquals(evaluationChecks(far, [], 784)[0].status, "failed");

  // A DC target: fresh-noise re-scoring is a check of its own (not-run until submitted with it).
  const fresh = (name: string) =>
    evaluationChecks(self, [], 784, true).find((c) => c.name.startsWith(name));
  assertEquals(fresh("fixed-noise")!.status, "not-run");
  const withDraws = (draws: number[][]) => ({
    ...self,
    items: self.items.map((it, i) => ({ ...it, fresh: draws[i] })),
  });
  // self is robust on 4 of 8 points; under both fresh draws only point 0 stays robust (1/8):
  // the fixed-noise 50% would be optimistic.
  const lucky = withDraws(self.items.map((_, i) => [i === 0 ? 1 : 0, i === 0 ? 1 : 0]));
  const k = evaluationChecks(lucky, [], 784, true).find((c) => c.name.startsWith("fixed-noise"))!;
  assertEquals(k.status, "failed");
  const { freshNoiseAccuracy } = await import("../lib/evaluation_checks.ts");
  assertEquals(freshNoiseAccuracy(lucky.items), [0.125, 0.125]);
  const steady = withDraws(self.items.map((it) => [it.advPred, it.advPred, 0]));
  assertEquals(
    evaluationChecks(steady, [], 784, true).find((c) => c.name.startsWith("fixed-noise"))!.status,
    "passed",
  );
  assertEquals(freshNoiseAccuracy([]), []);
});
