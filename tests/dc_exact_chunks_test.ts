/**
 * `bench dc-exact` grows with n: a real CLI process on the tiny bundle runs 3 images in chunks
 * of 2, then 4 images — the finished first chunk is reused byte for byte, the partial last one
 * is redone, and a checkpoint made under other settings is refused. The merge in-process.
 */
import { join } from "node:path";
import { mergeChunks, type State } from "../bench/dc_exact.ts";
import { dataDirs } from "../lib/fashion_mnist.ts";
import { assert_, assertEquals } from "./assert.ts";
import { REPO, runCli, TINY_DIFFUSION, TINY_SURROGATE } from "./helpers.ts";

const hasData = dataDirs(REPO).some((d) => {
  try {
    return Deno.statSync(join(d, "t10k-images-idx3-ubyte.gz")).isFile;
  } catch {
    return false;
  }
});

/** one cheap exact attack on the tiny bundle: a 2-pair grid, APGD-CE, 2 iterations, ×1 */
const TINY_ATTACK = [
  "bench",
  "dc-exact",
  "--bundle",
  TINY_DIFFUSION,
  "--surrogate",
  TINY_SURROGATE,
  "--settings",
  '{"stages":[{"nSamples":2,"keep":1}],"gridSize":2}',
  "--attacks",
  "apgd-ce",
  "--iters",
  "2",
  "--pairs",
  "1",
  "--levels",
  "1",
];

const stage = (name: string, attacked: number, robust: number[], calls: number) => ({
  name,
  attacked,
  robust,
  unetCallsPerImage: calls,
  seconds: 1,
});

Deno.test("dc-exact chunks: merged flags in image order, calls averaged over attacked images", () => {
  const a: State = {
    config: { n: 2, seed: 0 },
    clean: [1, 1],
    transfer: [stage("t", 2, [1, 0], 0)],
    levels: { x1: [stage("ce", 1, [0, 0], 100)], x2: [stage("ce", 1, [1, 0], 200)] },
  };
  const b: State = {
    config: { n: 1, offset: 2, seed: 0 },
    clean: [1],
    transfer: [stage("t", 1, [1], 0)],
    levels: { x1: [stage("ce", 1, [1], 40)] },
  };
  const m = mergeChunks([a, b]);
  assertEquals(m.config, { n: 3, seed: 0 });
  assertEquals(m.clean, [1, 1, 1]);
  assertEquals(m.transfer![0].robust, [1, 0, 1]);
  assertEquals(m.levels.x1[0].robust, [0, 0, 1]);
  assertEquals(m.levels.x1[0].attacked, 2);
  assertEquals(m.levels.x1[0].unetCallsPerImage, 70);
  assertEquals(m.levels.x1[0].seconds, 2);
  // a level only one chunk ran is not a figure over all images
  assertEquals(Object.keys(m.levels), ["x1"]);
});

Deno.test({
  name: "dc-exact chunks: a larger --n reuses finished chunks and redoes only the partial one",
  ignore: !hasData,
  async fn() {
    const dir = await Deno.makeTempDir();
    const ck = join(dir, "ck");
    const run = (n: number, extra: string[] = []) =>
      runCli([
        ...TINY_ATTACK,
        "--chunk",
        "2",
        "--threads",
        "1",
        "--checkpoint",
        ck,
        "--n",
        String(n),
        "--json",
        join(dir, `n${n}.json`),
        ...extra,
      ], { env: { TMDC_PROVIDERS: "cpu" } });
    try {
      const r3 = await run(3);
      assertEquals(r3.code, 0, r3.stderr);
      const first = await Deno.readTextFile(join(ck, "state.json"));
      assertEquals(JSON.parse(first).config.n, 2);
      assertEquals(JSON.parse(await Deno.readTextFile(join(ck, "state@2.json"))).config.offset, 2);
      const rep3 = JSON.parse(await Deno.readTextFile(join(dir, "n3.json")));
      assertEquals(rep3.n, 3);
      assertEquals(rep3.worst_flags.length, 3);

      const r4 = await run(4);
      assertEquals(r4.code, 0, r4.stderr);
      assertEquals(await Deno.readTextFile(join(ck, "state.json")), first);
      assert_(/holds 1 images, not 2: redoing that chunk/.test(r4.stderr), r4.stderr);
      const last = JSON.parse(await Deno.readTextFile(join(ck, "state@2.json")));
      assertEquals(last.clean.length, 2);
      const rep4 = JSON.parse(await Deno.readTextFile(join(dir, "n4.json")));
      assertEquals(rep4.n, 4);
      assertEquals(rep4.config.n, 4);
      assertEquals(rep4.worst_flags.slice(0, 2), rep3.worst_flags.slice(0, 2));
      assertEquals(
        rep4.clean.robust,
        [...JSON.parse(first).clean, ...last.clean].filter(Boolean).length,
      );

      // finished work is never thrown away: other settings, a smaller n that splits a chunk and
      // another chunk size are refused, and the state files stay as they were
      const before = await Deno.readTextFile(join(ck, "state@2.json"));
      for (
        const [n, extra, why] of [
          [4, ["--eps", "0.2"], /was made with other settings/],
          [3, [], /a smaller --n must end where a chunk ends/],
          [4, ["--chunk", "4"], /was made in chunks of 2: pass --chunk 2/],
        ] as const
      ) {
        const bad = await run(n, [...extra]);
        assertEquals(bad.code, 2, bad.stderr);
        assert_(why.test(bad.stderr), bad.stderr);
      }
      assertEquals(await Deno.readTextFile(join(ck, "state.json")), first);
      assertEquals(await Deno.readTextFile(join(ck, "state@2.json")), before);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "dc-exact: --no-transfer-starts attacks from random starts only (the unbounded sanity run)",
  ignore: !hasData,
  async fn() {
    const dir = await Deno.makeTempDir();
    const args = [
      ...TINY_ATTACK,
      "--threads",
      "1",
      "--n",
      "2",
      "--eps",
      "1",
      "--no-transfer-starts",
      "--checkpoint",
      join(dir, "ck"),
      "--json",
      join(dir, "r.json"),
    ];
    try {
      const none = await runCli(args, { env: { TMDC_PROVIDERS: "cpu" } });
      assertEquals(none.code, 2, none.stderr);
      assert_(/needs --random-restarts/.test(none.stderr), none.stderr);
      const r = await runCli([...args, "--random-restarts", "1"], {
        env: { TMDC_PROVIDERS: "cpu" },
      });
      assertEquals(r.code, 0, r.stderr);
      const rep = JSON.parse(await Deno.readTextFile(join(dir, "r.json")));
      assertEquals(rep.config.transfer_starts, false);
      assertEquals(rep.budget.starts_per_attack, "0 transferred examples + 1 random");
      assertEquals(rep.levels[0].stages.map((s: { name: string }) => s.name), [
        "apgd-ce ×1 from random start 1",
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
