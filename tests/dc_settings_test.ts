/** The secret-seed mode: a fresh seed per request, stored with the job; fixed mode untouched. */
import { assert_, assertEquals } from "./assert.ts";
import { PAPER_SETTINGS, withRequestSeed } from "../lib/dc_settings.ts";
import { fashionPngs, FAST_SETTINGS, inProcessApp } from "./service_helpers.ts";

Deno.test("withRequestSeed: secret mode draws from the given source, fixed mode keeps the seed", () => {
  const fixed = { ...PAPER_SETTINGS, seed: 7 };
  assertEquals(withRequestSeed(fixed, () => Uint32Array.of(99)), fixed);
  const secret = { ...fixed, seedMode: "secret" as const };
  assertEquals(withRequestSeed(secret, () => Uint32Array.of(99)).seed, 99);
  const seeds = new Set(Array.from({ length: 16 }, () => withRequestSeed(secret).seed));
  assert_(seeds.size >= 15, `16 requests drew ${seeds.size} distinct seeds`);
});

Deno.test("a secret-seed classification stores a fresh seed with each request's job", async () => {
  const { app, store, key, close } = await inProcessApp();
  const [{ png }] = await fashionPngs(1);
  const seeds: number[] = [];
  for (let k = 0; k < 3; k++) {
    const body = new FormData();
    body.append("image", new Blob([png.slice()], { type: "image/png" }), "x.png");
    body.append("options", JSON.stringify({ settings: { ...FAST_SETTINGS, seedMode: "secret" } }));
    const r = await app.request("/v1/classify", {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
      body,
    });
    assertEquals(r.status, 202); // no worker online: queued
    const { job } = await r.json();
    const stored = await store.getJob(job.id);
    assertEquals(stored?.settings?.seedMode, "secret");
    seeds.push(stored!.settings!.seed);
  }
  assertEquals(new Set(seeds).size, 3);
  close();
});
