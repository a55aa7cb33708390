/**
 * CIFAR-10 from local files (issue 15): one tiny seeded test batch written by
 * `python -m tmdc_compiler.cifar10 --fixture` in every layout — the binary records, the official
 * Python 2 pickle (BINSTRING bytes), Python 3 pickles at protocols 2 and 4 — reads back exactly.
 */
import { assertEquals, assertRejects } from "./assert.ts";
import {
  CIFAR10_ENV,
  cifar10Dir,
  heldOut,
  loadCifar10Test,
  parseBinaryBatch,
} from "../lib/cifar10.ts";
import { DatasetError } from "../lib/fashion_mnist.ts";
import { uniform } from "../lib/rng.ts";

const FX = new URL("./fixtures/cifar10-tiny", import.meta.url).pathname;
const N = 12;
// the generator of tmdc_compiler.cifar10.tiny: byte = min(floor(u·256), 255), label = i mod 10
const bytes = Uint8Array.from(
  uniform(0, 0xc1fa, N * 3072),
  (u) => Math.min(255, Math.floor(u * 256)),
);

for (const layout of ["bin", "py2", "py3-protocol2", "py3-protocol4", "py3-protocol5"]) {
  Deno.test(`CIFAR-10 ${layout} layout reads back exactly`, async () => {
    const set = await loadCifar10Test(`${FX}/${layout}`);
    assertEquals(set.n, N);
    assertEquals(Array.from(set.labels), Array.from({ length: N }, (_, i) => i % 10));
    let bad = -1;
    for (let p = 0; p < N * 3072 && bad < 0; p++) {
      if (set.images[p] !== Math.fround(bytes[p] / 255)) bad = p;
    }
    assertEquals(bad, -1, `first differing pixel ${bad}`);
  });
}

Deno.test("CIFAR-10 absent: the error names TMDC_CIFAR10_DIR", async () => {
  const e = (() => {
    try {
      cifar10Dir(() => undefined);
    } catch (err) {
      return err as Error;
    }
  })();
  assertEquals(e instanceof DatasetError && e.message.includes(CIFAR10_ENV), true);
  const tmp = await Deno.makeTempDir();
  await assertRejects(() => loadCifar10Test(tmp), DatasetError, CIFAR10_ENV);
  await Deno.remove(tmp);
});

Deno.test("a truncated binary batch and a non-pickle are refused", async () => {
  const good = await Deno.readFile(`${FX}/bin/cifar-10-batches-bin/test_batch.bin`);
  let msg = "";
  try {
    parseBinaryBatch(good.subarray(0, 5000));
  } catch (e) {
    msg = (e as Error).message;
  }
  assertEquals(msg.includes("3073-byte records"), true, msg);
  const tmp = await Deno.makeTempDir();
  await Deno.mkdir(`${tmp}/cifar-10-batches-py`);
  await Deno.writeFile(`${tmp}/cifar-10-batches-py/test_batch`, new Uint8Array([1, 2, 3]));
  await assertRejects(() => loadCifar10Test(tmp), DatasetError, "not a CIFAR-10 Python batch");
  // a protocol-0 (text) pickle is refused, not misread
  await Deno.writeFile(
    `${tmp}/cifar-10-batches-py/test_batch`,
    new TextEncoder().encode("(dp0\nS'data'\np1\n"),
  );
  await assertRejects(() => loadCifar10Test(tmp), DatasetError, "protocol 0/1");
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("the fine-tune's validation split is the last 5,000 training images, as the surrogate recipe's", () => {
  // tmdc_compiler.cifar_surrogate.held_out: min(5000, max(1, n // 10))
  assertEquals([heldOut(50_000), heldOut(100), heldOut(5)], [5000, 10, 1]);
});
