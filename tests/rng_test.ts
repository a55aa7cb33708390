import { assertEquals } from "./assert.ts";
import { normal, uniform } from "../lib/rng.ts";
import { reference } from "./helpers.ts";

Deno.test("portable RNG reproduces the Python generator bit for bit", () => {
  assertEquals(Array.from(uniform(0, 0, 4)), reference.rng.uniform_0_0);
  assertEquals(Array.from(uniform(9, 5, 3, 3)), reference.rng.uniform_9_5_offset3);
  assertEquals(Array.from(normal(1, 2, 4)), reference.rng.normal_1_2.map(Math.fround));
});

Deno.test("portable RNG normals have unit moments", () => {
  const n = normal(42, 3, 200_001);
  let m = 0;
  let v = 0;
  for (const x of n) m += x;
  m /= n.length;
  for (const x of n) v += (x - m) ** 2;
  v /= n.length;
  if (Math.abs(m) > 0.01 || Math.abs(v - 1) > 0.01) throw new Error(`mean ${m}, var ${v}`);
});
