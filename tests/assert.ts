/** Deno-style assertions over node:assert (JSR's @std/assert is unreachable here). */
import assert from "node:assert/strict";

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (msg === undefined) assert.deepStrictEqual(actual, expected);
  else assert.deepStrictEqual(actual, expected, msg);
}

export function assert_(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new Error(msg);
}

export function assertThrows(
  f: () => unknown,
  cls?: new (...a: never[]) => Error,
  includes?: string,
): Error {
  try {
    f();
  } catch (e) {
    return check(e, cls, includes);
  }
  throw new Error("expected a throw");
}

export async function assertRejects(
  f: () => Promise<unknown>,
  cls?: new (...a: never[]) => Error,
  includes?: string,
): Promise<Error> {
  try {
    await f();
  } catch (e) {
    return check(e, cls, includes);
  }
  throw new Error("expected a rejection");
}

function check(e: unknown, cls?: new (...a: never[]) => Error, includes?: string): Error {
  if (cls && !(e instanceof cls)) throw new Error(`expected ${cls.name}, got ${e}`);
  if (includes && !String((e as Error).message).includes(includes)) {
    throw new Error(`expected message to include "${includes}", got "${(e as Error).message}"`);
  }
  return e as Error;
}
