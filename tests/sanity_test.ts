import { assert_, assertEquals } from "./assert.ts";
import {
  budgetMonotone,
  doublingStable,
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
});
