/**
 * The CLI as a user meets it: every command's `--help`, one-line errors with exit code 2 for bad
 * input, and runs from another folder. Real `deno run cli.ts` processes (no model runs, except
 * one tiny-bundle `bench classify`); the argument parser and the progress lines in-process.
 */
import { join } from "node:path";
import { COMMANDS } from "../cli.ts";
import { parseOptions } from "../cli/args.ts";
import { UsageError } from "../cli/errors.ts";
import { Progress } from "../cli/progress.ts";
import { countingOracle } from "../lib/attacks/oracle.ts";
import { config } from "../config.ts";
import { dataDirs } from "../lib/fashion_mnist.ts";
import { assert_, assertEquals, assertThrows } from "./assert.ts";
import { REPO, runCli, TINY_DIFFUSION } from "./helpers.ts";
import { linearOracle } from "./linear_oracle.ts";

const cli = runCli;

/** `f` over `items`, four at a time (the machine's cores are shared). */
async function pool<T, R>(items: T[], f: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return out;
}

Deno.test("cli: --help lists every command and exits 0", async () => {
  const r = await cli(["--help"]);
  assertEquals(r.code, 0, r.stderr);
  for (const name of Object.keys(COMMANDS)) assert_(r.stdout.includes(`  ${name} `), name);
  const none = await cli([]);
  assertEquals(none.code, 2);
  assert_(none.stderr.includes("commands:"));
});

Deno.test("cli: every command's --help prints its usage and options and exits 0", async () => {
  const runs = await pool(Object.keys(COMMANDS), async (name) => ({
    name,
    r: await cli([...name.split(" "), "--help"]),
  }));
  for (const { name, r } of runs) {
    assertEquals(r.code, 0, `${name}: ${r.stderr}`);
    assert_(r.stdout.startsWith(`usage: deno task cli ${name}`), `${name}: ${r.stdout}`);
    for (const opt of Object.keys(COMMANDS[name].options)) {
      assert_(r.stdout.includes(`--${opt}`), `${name} --help lacks --${opt}`);
    }
    assertEquals(r.stderr, "", name);
  }
  for (const group of ["bench", "keys"]) {
    const r = await cli([group, "--help"]);
    assertEquals(r.code, 0, r.stderr);
    assert_(r.stdout.includes(`${group} `), r.stdout);
  }
});

/** Bad input: exit 2, exactly one stderr line `error: …`, no stack trace, nothing on stdout. */
const BAD: [string[], string][] = [
  [["evaluate", "--source", "foo"], "--source"],
  [["evaluate", "--target", "foo"], "--target"],
  [["evaluate", "--attack", "pgd"], "--eps is required"],
  [["evaluate", "--attack", "nope", "--eps", "0.1"], "--attack"],
  [["finetune", "--steps", "abc"], "--steps must be an integer"],
  [["finetune", "--checkpoints", "100,x"], "--checkpoints"],
  [["bench", "table", "--mode", "bogus"], "--mode"],
  [["bench", "classify", "--n", "-1"], "--n must be an integer in [1, 10000]"],
  [["bench", "classify", "--settings", "{bad"], "--settings is not valid JSON"],
  [["bench", "classify", "--settings", '{"gridSize":0}'], "--settings: gridSize"],
  [["bench", "autoattack", "--eps", "x"], "--eps must be a number"],
  [["bench", "tm-curve", "--json", "x.json"], "--finetune is required"],
  [["bench", "tm-ablation", "--base", "a.json"], "--tmdc is required"],
  [["bench", "table-md", "/nonexistent/report.json"], "No such file"],
  [["bench", "classify", "--bundle", "no-such-bundle"], "manifest.json does not exist"],
  [["classify"], "needs FILE"],
  [["bench", "nope"], "unknown subcommand"],
  [["nope"], "unknown command"],
  ...Object.keys(COMMANDS).map((name): [string[], string] => [
    [...name.split(" "), "--no-such-flag"],
    "unknown option '--no-such-flag'",
  ]),
];

Deno.test("cli: bad input is one `error:` line and exit code 2, never a stack trace", async () => {
  const runs = await pool(BAD, async ([args, says]) => ({ args, says, r: await cli(args) }));
  for (const { args, says, r } of runs) {
    const what = args.join(" ");
    assertEquals(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
    const lines = r.stderr.trimEnd().split("\n");
    assertEquals(lines.length, 1, `${what}: ${r.stderr}`);
    assert_(lines[0].startsWith("error: "), `${what}: ${lines[0]}`);
    assert_(lines[0].includes(says), `${what}: '${lines[0]}' should mention '${says}'`);
    assert_(!/\bat .*:\d+:\d+/.test(r.stderr), `${what}: stack trace`);
    assertEquals(r.stdout, "", what);
  }
});

Deno.test("cli: runs from another folder (help; keys create into TMDC_KV_PATH)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const help = await cli(["--help"], { cwd: dir });
    assertEquals(help.code, 0, help.stderr);
    const kv = join(dir, "sub", "tmdc.kv");
    const r = await cli(["keys", "create", "--name", "from-tmp"], {
      cwd: dir,
      env: { TMDC_KV_PATH: kv },
    });
    assertEquals(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assertEquals(out.name, "from-tmp");
    assertEquals(out.kv, kv);
    assert_(String(out.key).startsWith("tmdc_"), r.stdout);
    assert_((await Deno.stat(kv)).isFile);
    // the first key is an admin's, the next a member's; list shows both; revoke marks one
    assertEquals(out.role, "admin");
    const env = { TMDC_KV_PATH: kv };
    const second = JSON.parse(
      (await cli(["keys", "create", "--name", "b"], { cwd: dir, env })).stdout,
    );
    assertEquals(second.role, "member");
    const revoked = await cli(["keys", "revoke", "--id", second.id], { cwd: dir, env });
    assertEquals(revoked.code, 0, revoked.stderr);
    const listed = (await cli(["keys", "list"], { cwd: dir, env })).stdout.trim().split("\n")
      .map((l) => JSON.parse(l));
    assertEquals(listed.map((k) => [k.name, k.role, k.revokedAt !== null]), [
      ["from-tmp", "admin", false],
      ["b", "member", true],
    ]);
    const unknown = await cli(["keys", "revoke", "--id", "nope"], { cwd: dir, env });
    assertEquals(unknown.code, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const hasData = dataDirs(REPO).some((d) => {
  try {
    return Deno.statSync(join(d, "t10k-images-idx3-ubyte.gz")).isFile;
  } catch {
    return false;
  }
});

Deno.test({
  name: "cli: bench classify from another folder writes its report there, with a progress line",
  ignore: !hasData,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const r = await cli([
        "bench",
        "classify",
        "--n",
        "2",
        "--bundle",
        TINY_DIFFUSION,
        "--settings",
        '{"stages":[{"nSamples":2,"keep":1}],"gridSize":2}',
        "--json",
        "out/report.json",
      ], { cwd: dir, env: { TMDC_PROVIDERS: "cpu" } });
      assertEquals(r.code, 0, r.stderr);
      const report = JSON.parse(await Deno.readTextFile(join(dir, "out", "report.json")));
      assertEquals(report.n, 2);
      assertEquals(report.labels.length, 2);
      assert_(
        /\[bench classify\] DC on 2 images: 40\/40 UNet calls · .* · done/.test(r.stderr),
        r.stderr,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("cli args: typed values, defaults, ranges, paths against the user's folder", () => {
  const spec = {
    n: { type: "int", min: 1, max: 10, default: 4, help: "" },
    eps: { type: "number", min: 0, required: true, help: "" },
    mode: { type: "enum", values: ["a", "b"], default: "a", help: "" },
    ks: { type: "ints", min: 1, help: "" },
    out: { type: "path", default: "-", help: "" },
    bundle: { type: "bundle", default: "some-bundle", help: "" },
    flag: { type: "boolean", help: "" },
    settings: { type: "settings", help: "" },
  } as const;
  const init = Deno.env.get("INIT_CWD");
  Deno.env.set("INIT_CWD", "/somewhere");
  try {
    const { values } = parseOptions(spec, [
      "--eps=0.5",
      "--ks",
      "1,2,3",
      "--out",
      "r.json",
      "--settings",
      '{"seed":3}',
    ]);
    assertEquals(values.n, 4);
    assertEquals(values.eps, 0.5);
    assertEquals(values.mode, "a");
    assertEquals(values.ks, [1, 2, 3]);
    assertEquals(values.out, "/somewhere/r.json");
    assertEquals(values.bundle, join(config.modelsDir, "some-bundle"));
    assertEquals(values.flag, false);
    assertEquals(values.settings, { seed: 3 });
    const p = parseOptions(spec, ["--eps", "1", "--bundle", "./b", "--out", "-"]).values;
    assertEquals(p.bundle, "/somewhere/b");
    assertEquals(p.out, "-");
    assertEquals(parseOptions(spec, ["--eps", "-0.5", "--help"]).help, true);
  } finally {
    if (init === undefined) Deno.env.delete("INIT_CWD");
    else Deno.env.set("INIT_CWD", init);
  }
  assertThrows(() => parseOptions(spec, ["--eps", "-1"]), UsageError, "--eps must be a number ≥ 0");
  assertThrows(() => parseOptions(spec, ["--eps", "1", "--n", "11"]), UsageError, "in [1, 10]");
  assertThrows(() => parseOptions(spec, ["--eps", "1", "--n", "2.5"]), UsageError, "integer");
  assertThrows(() => parseOptions(spec, ["--eps", "1", "--mode", "c"]), UsageError, "one of a, b");
  assertThrows(() => parseOptions(spec, ["--eps", "1", "x"]), UsageError, "unexpected argument");
  assertThrows(() => parseOptions(spec, ["--eps", "1", "--flag=1"]), UsageError);
  assertThrows(
    () => parseOptions(spec, ["--eps", "1", "--settings", '{"bogus":1}']),
    UsageError,
    "--settings",
  );
});

Deno.test("cli progress: at most one line per interval, a final line per phase, an ETA", () => {
  let now = 0;
  const lines: string[] = [];
  const p = new Progress("t", { intervalMs: 10_000, now: () => now, write: (l) => lines.push(l) });
  p.start("attack", 100, "evals");
  for (let k = 1; k <= 100; k++) {
    now += 500; // 50 s for the phase: lines at 10, 20, 30, 40 s and the final one
    p.add(1);
  }
  assertEquals(lines.length, 5, lines.join("\n"));
  assertEquals(lines[0], "[t] attack: 20/100 evals · 10 s elapsed · ETA 40 s");
  assertEquals(lines[4], "[t] attack: 100/100 evals · 50 s · done");
  // a phase that ends early (AutoAttack stops on broken points) still gets its final line
  const cb = p.callback("score", "calls");
  cb(3, 10);
  p.end();
  assertEquals(lines.at(-1), "[t] score: 3/10 calls · 0 s · done");
  // a resumed phase: the rate counts only this run's work
  p.start("train", 10, "steps", 5);
  now += 20_000;
  p.update(6);
  assertEquals(lines.at(-1), "[t] train: 6/10 steps · 20 s elapsed · ETA 80 s");
});

Deno.test("cli progress: countingOracle counts images and changes nothing", async () => {
  const o = linearOracle([1, 0, 0, 1, 1, 1], [0, 0.5], 2, 3);
  let images = 0;
  const c = countingOracle(o, (k) => (images += k));
  const x = new Float32Array(2 * o.size).fill(0.5);
  assertEquals(await c.logits(x, 2), await o.logits(x, 2));
  const loss = (z: Float64Array | Float32Array, i: number) => ({
    loss: z[i * o.numClasses],
    grad: Float64Array.from({ length: o.numClasses }, (_, j) => (j === 0 ? 1 : 0)),
  });
  assertEquals((await c.lossGrad(x, 2, loss)).grad, (await o.lossGrad(x, 2, loss)).grad);
  assertEquals(images, 4);
  assertEquals([c.numClasses, c.size, c.stochastic], [o.numClasses, o.size, o.stochastic]);
});

Deno.test("cli: the paper's setting — data that does not fit a bundle is one error line, not a crash", async () => {
  const sd = join(REPO, "tests", "fixtures", "sd-tiny-cifar10");
  const env = { TMDC_CIFAR10_DIR: join(REPO, "tests", "fixtures", "cifar10-tiny", "bin") };
  const cases: [string[], string][] = [
    [
      ["bench", "classify", "--bundle", sd, "--n", "2"],
      "fashion-mnist-test holds 10 classes of 1×28×28",
    ],
    [
      ["bench", "classify", "--bundle", sd, "--dataset", "cifar10-test", "--n", "20"],
      "has 12 images",
    ],
    [[
      "evaluate",
      "--attack",
      "fgsm",
      "--eps",
      "0.03",
      "--bundle",
      sd,
      "--dataset",
      "cifar10-test",
      "--n",
      "2",
    ], "pass --surrogate"],
    [["finetune", "--bundle", sd, "--steps", "2"], "--data fashion-mnist"],
    [["bench", "unet-throughput", "--rows", "0"], "--rows must be"],
  ];
  for (const [args, want] of cases) {
    const r = await cli(args, { env });
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert_(
      r.stderr.includes(want) && !r.stderr.includes("    at "),
      `${args.join(" ")}: ${r.stderr}`,
    );
  }
});
