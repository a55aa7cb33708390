/**
 * `bench paper` and `bench paper-report` end to end on the tiny real bundles: both blocks run,
 * DiffPure is attacked through its own gradients with EOT, a resumed run with other settings is
 * refused, and the report and the plot are written from the cells.
 */
import { join } from "node:path";
import { assert_, assertEquals } from "./assert.ts";
import { runCli } from "./helpers.ts";
import { tinyModelsDir } from "./service_helpers.ts";

Deno.test("bench paper: transfer and white-box blocks on the tiny bundles, resumable, reported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tmdc-paper-" });
  const models = await tinyModelsDir();
  const env = {
    TMDC_MODELS_DIR: models,
    TMDC_DEFAULT_BUNDLE: "tiny-diffusion",
    TMDC_DEFAULT_SURROGATE: "resnet8-fmnist",
  };
  const args = (whiteboxN: number) => [
    "bench",
    "paper",
    "--state",
    join(dir, "state"),
    "--transfer-n",
    "6",
    "--whitebox-n",
    String(whiteboxN),
    "--diffpure-n",
    "3",
    "--t-star",
    "20",
    "--steps",
    "2",
    "--eot",
    "2",
    "--rows",
    "resnet8-fmnist@,diffpure",
    "--blocks",
    "transfer,whitebox",
    "--threads",
    "1",
    "--json",
    join(dir, "paper.json"),
  ];
  const r = await runCli(args(4), { env });
  assertEquals(r.code, 0, r.stderr);
  const paper = JSON.parse(await Deno.readTextFile(join(dir, "paper.json")));
  type C = {
    block: string;
    row: string;
    n: number;
    robust: number;
    mode: string;
    attack: { eotIter?: number };
  };
  const cells = paper.cells as C[];
  const dp = "diffpure(t*=20,ddim2,eot2)+resnet8-fmnist@1.0.0";
  const count = (block: string, row: string) =>
    cells.filter((c) => c.block === block && c.row === row).length;
  assertEquals(
    [
      count("transfer", "resnet8-fmnist@1.0.0"),
      count("transfer", dp),
      count("whitebox", "resnet8-fmnist@1.0.0"),
      count("whitebox", dp),
    ],
    [9, 9, 9, 6],
  );
  for (const c of cells) assert_(c.robust <= c.n, `${c.row} ${c.robust}/${c.n}`);
  // DiffPure's own-gradient cells are adaptive and average gradients over 2 draws
  const own = cells.filter((c) => c.block === "whitebox" && c.row === dp);
  assert_(own.every((c) => c.mode === "adaptive" && c.attack.eotIter === 2 && c.n === 3));
  assert_(
    cells.filter((c) => c.block === "transfer" && c.row === dp).every((c) => c.mode === "transfer"),
  );

  // the same state with another image count: refused, nothing overwritten
  const again = await runCli(args(5), { env });
  assertEquals(again.code !== 0, true);
  assert_(again.stderr.includes("use another --state folder"), again.stderr);

  const rep = await runCli([
    "bench",
    "paper-report",
    "--paper",
    join(dir, "paper.json"),
    "--state",
    join(dir, "state", "cells.json"),
    "--md",
    join(dir, "t.md"),
    "--svg",
    join(dir, "t.svg"),
    "--png",
    join(dir, "t.png"),
    "--record",
    models,
  ], { env });
  assertEquals(rep.code, 0, rep.stderr);
  const md = await Deno.readTextFile(join(dir, "t.md"));
  assert_(md.includes("Table 1 — transfer") && md.includes(dp) && md.includes("Worst case"), md);
  assert_((await Deno.readTextFile(join(dir, "t.svg"))).includes("<svg"));
  const manifest = JSON.parse(
    await Deno.readTextFile(join(models, "tiny-surrogate", "manifest.json")),
  );
  assertEquals(manifest.provenance.metrics["paper-tables"].cells.length, 18);
});
