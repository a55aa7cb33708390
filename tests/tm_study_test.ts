/**
 * `bench tm-study` end to end on the tiny real bundles: configurations trained with
 * checkpoints, one chosen on validation under the exact attack, the study table with every
 * configuration's test column under the same attack (paired with the DC), its Markdown, and a
 * parallel `--test-choose` process that reads back the figure the table reports.
 */
import { join } from "node:path";
import { assert_, assertEquals } from "./assert.ts";
import { runCli } from "./helpers.ts";
import { FAST_SETTINGS, tinyModelsDir } from "./service_helpers.ts";
import { paired } from "../bench/tm_study.ts";
import { signTestP } from "../lib/sanity.ts";

/** exact-attack images; ε small enough that some stay robust on the tiny bundle */
const N = 4;

Deno.test("bench tm-study: every configuration under the choosing attack on validation and test; the table", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tmdc-tmstudy-" });
  const env = {
    TMDC_MODELS_DIR: await tinyModelsDir(),
    TMDC_DEFAULT_BUNDLE: "tiny-diffusion",
    TMDC_DEFAULT_SURROGATE: "tiny-surrogate",
  };
  const study = {
    pool: 4,
    valN: 4,
    testN: 4,
    checkpoints: [1, 2],
    norm: "linf",
    eps: 0.02,
    dc: FAST_SETTINGS,
    exact: { n: N, iters: 1, pairs: 1, attacks: ["apgd-ce"], levels: [1, 2] },
    configs: [
      { name: "a", bundle: "tiny-diffusion", lr: 1e-3, steps: 2, eps: 0.1, source: "transfer" },
      {
        name: "b",
        bundle: "tiny-diffusion",
        lr: 1e-6,
        steps: 2,
        eps: 0.1,
        source: "transfer",
        exactValidation: false,
        note: "not attacked (a test of the note)",
      },
    ],
  };
  const studyFile = join(dir, "study.json");
  await Deno.writeTextFile(studyFile, JSON.stringify(study));
  const common = ["bench", "tm-study", "--study", studyFile, "--state", join(dir, "state")];
  const t0 = performance.now();
  const r = await runCli(
    [...common, "--threads", "1", "--json", join(dir, "s.json"), "--md", join(dir, "s.md")],
    { env },
  );
  const wallS = (performance.now() - t0) / 1000;
  assertEquals(r.code, 0, r.stderr);
  const s = JSON.parse(await Deno.readTextFile(join(dir, "s.json")));
  const t = s.study_table;
  assertEquals(t.rows.map((x: { config: string }) => x.config), ["a", "b"]);
  const [a, b] = t.rows;
  // the attacked configuration: validation and test under the same attack, paired with the DC
  assertEquals([a.validation.exact_n, a.test.exact_n], [N, N]);
  assert_(a.validation.exact !== null && a.test.exact !== null && a.test.exact_vs_dc !== null);
  const { tmdc_only_robust: tmOnly, dc_only_robust: dcOnly } = a.test.exact_vs_dc;
  assertEquals(a.test.exact.robust - t.dc.test.exact.robust, tmOnly - dcOnly);
  // the DC row has its own clean and transfer figures on the checkpoint sets
  for (const f of [t.dc.validation, t.dc.test]) {
    assert_(f.clean >= 0 && f.clean <= 1 && f.transfer_robust <= f.clean, JSON.stringify(f));
  }
  // the chosen one (the only one attacked) carries the full test attack, both levels; it runs
  // the choosing attack's stages with the same seeds first, so it can only break more
  assertEquals(s.choice.chosen.config, "a");
  assertEquals(a.test.full_attack.adaptive_levels.length, 2);
  assert_(a.test.full_attack.worst_case.robust <= a.test.exact.robust);
  assertEquals(t.dc.test.full_attack.worst_case, s.test.dc.worst_case);
  // the one not attacked says why, and has no exact figures
  assertEquals([b.validation.exact, b.test.exact, b.test.full_attack], [null, null, null]);
  assertEquals(b.note, "not attacked (a test of the note)");
  for (const row of t.rows) assert_(row.seconds > 0 && row.seconds < wallS, `${row.seconds} s`);
  assertEquals(t.rows.map((x: { seconds_note: null }) => x.seconds_note), [null, null]);

  const md = await Deno.readTextFile(join(dir, "s.md"));
  assert_(md.includes("| DC (no TM) | 0 |"), md);
  assert_(/\| a \| [\d,]+ \| 0\.001 \| 0\.1 \| transfer \| [12] \|/.test(md), md);
  assert_(md.includes("(1) b: not attacked (a test of the note)"), md);

  // a parallel process's test-choose on the DC reads the same state: nothing attacked again
  const p = await runCli(
    [...common, "--threads", "1", "--test-choose", "dc", "--json", join(dir, "dc.json")],
    { env },
  );
  assertEquals(p.code, 0, p.stderr);
  assert_(!/clean verdicts|level ×/.test(p.stderr), p.stderr);
  const dc = JSON.parse(await Deno.readTextFile(join(dir, "dc.json")));
  assertEquals(dc.worst_case, t.dc.test.exact);
  // refused: an unknown or unattacked configuration, both test modes, the table in a test mode
  for (
    const [extra, msg] of [
      [["--test-choose", "nope"], /no configuration 'nope'/],
      [["--test-choose", "b"], /not attacked in this study/],
      [["--test-choose", "dc", "--test-config", "a"], /not both/],
      [["--test-choose", "dc", "--md", join(dir, "x.md")], /full run only/],
    ] as const
  ) {
    const bad = await runCli([...common, ...extra, "--json", "-"], { env });
    assert_(bad.code !== 0 && msg.test(bad.stderr), bad.stderr);
  }
  // a study file with other DC settings cannot reuse checkpoints trained under these
  await Deno.writeTextFile(
    studyFile,
    JSON.stringify({ ...study, dc: { ...FAST_SETTINGS, gridSize: 12 } }),
  );
  const other = await runCli([...common, "--json", "-"], { env });
  assert_(other.code !== 0 && /trained under DC overrides/.test(other.stderr), other.stderr);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("paired: images robust only with TM, only without, and the sign test", () => {
  const r = paired([1, 1, 0, 0, 1, 0], [1, 0, 1, 1, 1, 1]);
  assertEquals([r.tmdc_only_robust, r.dc_only_robust], [3, 1]);
  assertEquals(r.sign_test_p, signTestP(3, 1));
  assertEquals(paired([0, 1], [0, 1]).sign_test_p, 1);
});
