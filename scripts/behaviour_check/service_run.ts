/**
 * Behaviour check: one evaluation (transfer FGSM Linf 0.05, 32 seeded test images) and one classify
 * job (4 test images as PNG) through the real service (frontend + local worker) of the checkout in
 * argv[0]; writes the verdicts' and adversarial set's hashes to argv[1]. Reads results through that
 * checkout's own Store class, so it works on the old and the new layout.
 */
import { join } from "node:path";
import { createHash } from "node:crypto";
const repo = Deno.args[0];
const out = Deno.args[1];
const dir = await Deno.makeTempDir({ prefix: "acc-" });
const port = 18000 + Math.floor(Math.random() * 1000);
const env = {
  TMDC_PORT: String(port),
  TMDC_KV_PATH: join(dir, "kv.sqlite"),
  TMDC_WORKER_THREADS: "2",
  TMDC_PROVIDERS: "cpu",
};
const deno = Deno.execPath();
const run = (args: string[]) =>
  new Deno.Command(deno, {
    args: ["run", "-A", "--unstable-kv", "--config", join(repo, "deno.json"), ...args],
    env,
    cwd: repo,
  });
const key = JSON.parse(
  new TextDecoder().decode(
    (await run([join(repo, "cli.ts"), "keys", "create", "--name", "acc"]).output()).stdout,
  ),
).key;
const fe = run([join(repo, "main.ts")]).spawn();
const url = `http://127.0.0.1:${port}`;
for (let i = 0; i < 300; i++) {
  try {
    const r = await fetch(url + "/v1/health");
    const h = await r.json();
    if (h.workers > 0) break;
  } catch { /**/ }
  await new Promise((r) => setTimeout(r, 200));
}
const auth = { authorization: `Bearer ${key}` };
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
// evaluation: transfer FGSM Linf 0.05 from the surrogate to the default DC, 32 seeded test images
const ev = await (await fetch(url + "/v1/evaluations", {
  method: "POST",
  headers: { ...auth, "content-type": "application/json" },
  body: JSON.stringify({
    target: {},
    source: { kind: "surrogate" },
    attack: { attack: "fgsm", norm: "linf", eps: 0.05 },
    dataset: { name: "fashion-mnist-test", n: 32, seed: 0 },
  }),
})).json();
const id = ev.job.id;
let rep;
for (;;) {
  rep = await (await fetch(`${url}/v1/evaluations/${id}`, { headers: auth })).json();
  if (rep.job.status === "done" || rep.job.status === "failed") break;
  await new Promise((r) => setTimeout(r, 2000));
}
// classify: 4 test images as PNG
const { loadTest } = await import(join(repo, "lib/fashion_mnist.ts"));
const { encodePng } = await import(join(repo, "lib/image_decode.ts"));
const t = await loadTest(repo);
const fd = new FormData();
for (let i = 0; i < 4; i++) {
  fd.append(
    "image",
    new Blob([
      (await encodePng(t.images.subarray(i * 784, (i + 1) * 784), {
        channels: 1,
        height: 28,
        width: 28,
      })).slice(),
    ], { type: "image/png" }),
    `img-${i}.png`,
  );
}
const cl = await (await fetch(url + "/v1/classify", { method: "POST", headers: auth, body: fd }))
  .json();
fe.kill("SIGTERM");
await fe.status;
// adversarial set straight from the store (float32 bytes)
const { Store } = await import(join(repo, "store/kv_store.ts"));
const store = await Store.open(env.TMDC_KV_PATH);
const job = await store.getJob(id);
const setKey = job.evaluation?.setKey ?? job.spec?.setKey;
const advs: Uint8Array[] = [];
for (
  const it of rep.report
    ? (await store.listEvalResults(id)).flatMap((s: { items: { index: number }[] }) => s.items)
      .sort((a: { index: number }, b: { index: number }) => a.index - b.index)
    : []
) {
  const r = await store.getAdversarial(setKey, it.index);
  advs.push(await store.getBlob(r.blob));
}
store.close();
const items = rep.report.n;
const evItems = await (async () => {
  const st = await Store.open(env.TMDC_KV_PATH);
  const r = (await st.listEvalResults(id)).flatMap((
    s: { items: { index: number; label: number; cleanPred: number; advPred: number }[] },
  ) => s.items).sort((a: { index: number }, b: { index: number }) => a.index - b.index).map((
    it: { index: number; label: number; cleanPred: number; advPred: number },
  ) => [it.index, it.label, it.cleanPred, it.advPred]);
  st.close();
  return r;
})();
const all = new Uint8Array(advs.reduce((a, b) => a + b.length, 0));
let o = 0;
for (const b of advs) {
  all.set(b, o);
  o += b.length;
}
const result = {
  evaluation: {
    n: items,
    clean: rep.report.clean_accuracy,
    robust: rep.report.robust_accuracy,
    adv_sha256: sha(all),
    adv_images: advs.length,
    verdicts_sha256: sha(JSON.stringify(evItems)),
  },
  classify: {
    labels: cl.verdicts.map((v: { label: number }) => v.label),
    meanError_sha256: sha(
      JSON.stringify(cl.verdicts.map((v: { meanError: number[] }) => v.meanError)),
    ),
  },
};
await Deno.writeTextFile(out, JSON.stringify(result, null, 1));
console.log(JSON.stringify(result));
Deno.exit(0);
