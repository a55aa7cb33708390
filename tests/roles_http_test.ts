/** Keys with roles over HTTP, in-process: what each role may do, revocation, the audit log. */
import { assert_, assertEquals } from "./assert.ts";
import { fashionPngs, inProcessApp } from "./service_helpers.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";
import type { CheckpointScore, FinetuneJobSpec } from "../store/records.ts";

const [{ png }] = await fashionPngs(1);

Deno.test("roles: viewer reads only, member cannot manage keys, revoked keys are refused at once, all audited", async () => {
  const { app, store, close } = await inProcessApp();
  try {
    const { key: adminKey } = await store.createApiKey("boss", "admin");
    const as = (key: string, extra: HeadersInit = {}) => ({
      authorization: `Bearer ${key}`,
      ...extra,
    });
    const newKey = async (name: string, role: string) => {
      const r = await app.request("/v1/keys", {
        method: "POST",
        headers: as(adminKey, { "content-type": "application/json" }),
        body: JSON.stringify({ name, role }),
      });
      assertEquals(r.status, 201);
      return (await r.json()) as { key: string; record: { id: string; role: string } };
    };
    const member = await newKey("m", "member");
    const viewer = await newKey("v", "viewer");
    assertEquals([member.record.role, viewer.record.role], ["member", "viewer"]);

    const classify = (key: string) => {
      const fd = new FormData();
      fd.append("image", new Blob([png.slice()], { type: "image/png" }), "x.png");
      return app.request("/v1/classify?wait=false", { method: "POST", body: fd, headers: as(key) });
    };
    // viewer: reads, never writes
    const v = await classify(viewer.key);
    assertEquals([v.status, (await v.json()).code], [403, "read-only-key"]);
    assertEquals((await app.request("/v1/jobs/none", { headers: as(viewer.key) })).status, 404);
    // member: creates jobs, manages nothing
    const m = await classify(member.key);
    assertEquals(m.status, 202);
    const jobId = (await m.json()).job.id;
    for (
      const [path, method] of [["/v1/keys", "GET"], [`/v1/keys/${viewer.record.id}`, "DELETE"], [
        "/v1/audit",
        "GET",
      ]]
    ) {
      const r = await app.request(path, { method, headers: as(member.key) });
      assertEquals([r.status, (await r.json()).code], [403, "admin-only"], `${method} ${path}`);
    }
    // the viewer can read the member's job: one deployment is one team
    assertEquals((await app.request(`/v1/jobs/${jobId}`, { headers: as(viewer.key) })).status, 200);

    // revoked: refused from the next request on
    const rv = await app.request(`/v1/keys/${member.record.id}`, {
      method: "DELETE",
      headers: as(adminKey),
    });
    assertEquals(rv.status, 200);
    assert_((await rv.json()).revokedAt !== null);
    const after = await app.request(`/v1/jobs/${jobId}`, { headers: as(member.key) });
    assertEquals([after.status, (await after.json()).code], [401, "invalid-api-key"]);
    const gone = await app.request("/v1/keys/nope", { method: "DELETE", headers: as(adminKey) });
    assertEquals(gone.status, 404);

    // the listing shows every key with its role, never a secret
    const listed = await (await app.request("/v1/keys", { headers: as(adminKey) })).json();
    const text = JSON.stringify(listed);
    assert_(!text.includes(member.key) && !text.includes("tmdc_"), "no secret in the listing");
    assertEquals(
      listed.keys.filter((k: { name: string }) => ["m", "v"].includes(k.name))
        .map((
          k: { name: string; role: string; revokedAt: string | null },
        ) => [k.name, k.role, k.revokedAt !== null]),
      [["m", "member", true], ["v", "viewer", false]],
    );

    // the audit log, two entries a page, oldest first, every action once
    const seen: { action: string; actor: string; target: string }[] = [];
    let cursor: string | null = "";
    while (cursor !== null) {
      const q: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
      const page = await (await app.request(`/v1/audit?limit=2${q}`, { headers: as(adminKey) }))
        .json();
      assert_(page.entries.length <= 2);
      seen.push(...page.entries);
      cursor = page.next;
    }
    const adminId = (await store.listApiKeys()).find((k) => k.name === "boss")!.id;
    assertEquals(seen.map((e) => [e.action, e.actor, e.target]).slice(-5), [
      ["key.create", "cli", adminId],
      ["key.create", adminId, member.record.id],
      ["key.create", adminId, viewer.record.id],
      ["job.create", member.record.id, jobId],
      ["key.revoke", adminId, member.record.id],
    ]);
    assertEquals(new Set(seen.map((e) => JSON.stringify(e))).size, seen.length, "no entry twice");
  } finally {
    close();
  }
});

Deno.test("cancel: the owner or an admin; a viewer or another member may not; a finished job is 409", async () => {
  const { app, store, close } = await inProcessApp();
  try {
    const mk = async (role: "admin" | "member" | "viewer") =>
      `Bearer ${(await store.createApiKey(role, role)).key}`;
    const [admin, owner, other, viewer] = [
      await mk("admin"),
      await mk("member"),
      await mk("member"),
      await mk("viewer"),
    ];
    const submit = async () => {
      const fd = new FormData();
      fd.append("image", new Blob([png.slice()], { type: "image/png" }), "x.png");
      const r = await app.request("/v1/classify?wait=false", {
        method: "POST",
        body: fd,
        headers: { authorization: owner },
      });
      return (await r.json()).job.id as string;
    };
    const del = (id: string, authorization: string) =>
      app.request(`/v1/jobs/${id}`, { method: "DELETE", headers: { authorization } });
    const id = await submit();
    for (const [who, code] of [[other, "not-the-owner"], [viewer, "read-only-key"]] as const) {
      const r = await del(id, who);
      assertEquals([r.status, (await r.json()).code], [403, code]);
    }
    const ok = await del(id, owner);
    assertEquals([ok.status, (await ok.json()).status], [200, "cancelled"]);
    const again = await del(id, owner);
    assertEquals([again.status, (await again.json()).code], [409, "job-finished"]);
    assertEquals((await del(await submit(), admin)).status, 200, "an admin cancels anyone's");
    assertEquals((await del("nope", admin)).status, 404);
    const log =
      await (await app.request("/v1/audit?limit=500", { headers: { authorization: admin } }))
        .json();
    assertEquals(
      log.entries.filter((e: { action: string }) => e.action === "job.cancel").length,
      2,
    );
  } finally {
    close();
  }
});

Deno.test("listings: the team's jobs of a kind, newest first, by cursor pages; a bad cursor is a 400", async () => {
  const { app, key, close } = await inProcessApp();
  try {
    const auth = { authorization: `Bearer ${key}` };
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const fd = new FormData();
      fd.append("image", new Blob([png.slice()], { type: "image/png" }), `x${i}.png`);
      const r = await app.request("/v1/classify?wait=false", {
        method: "POST",
        body: fd,
        headers: auth,
      });
      ids.push((await r.json()).job.id);
    }
    const first = await (await app.request("/v1/jobs?kind=classify&limit=2", { headers: auth }))
      .json();
    assertEquals(first.jobs.map((j: { id: string }) => j.id), [ids[2], ids[1]]);
    const second = await (await app.request(
      `/v1/jobs?kind=classify&limit=2&cursor=${encodeURIComponent(first.next)}`,
      { headers: auth },
    )).json();
    assertEquals([second.jobs.map((j: { id: string }) => j.id), second.next], [[ids[0]], null]);
    const none = await (await app.request("/v1/jobs?kind=evaluate", { headers: auth })).json();
    assertEquals([none.jobs, none.next], [[], null]);
    const bad = await app.request("/v1/jobs?kind=classify&cursor=nonsense", { headers: auth });
    assertEquals([bad.status, (await bad.json()).code], [400, "invalid-cursor"]);
    const noKind = await app.request("/v1/jobs", { headers: auth });
    assertEquals([noKind.status, (await noKind.json()).code], [400, "invalid-request"]);
  } finally {
    close();
  }
});

Deno.test("adapters as files: exported, imported back (same LoRA), tampered files refused", async () => {
  const { app, store, registry, key, close } = await inProcessApp();
  try {
    const auth = { authorization: `Bearer ${key}` };
    const m = registry.resolve("tiny-diffusion")!.manifest as DiffusionManifest;
    const floats = m.lora.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
    const state = new Float32Array(3 * floats).map((_, i) => Math.sin(i));
    const finetune = { hyper: {}, checkpoints: [10] } as unknown as FinetuneJobSpec;
    const id = await store.putCheckpoint(null, {
      bundle: "tiny-diffusion@1.0.0",
      jobId: crypto.randomUUID(),
      owner: "someone",
      step: 10,
      loss: 0.5,
      validation: { n: 4, clean_accuracy: 1, robust_accuracy: 0.5 } as unknown as CheckpointScore,
      finetune,
    }, new Uint8Array(state.buffer));
    const exported = await app.request(`/v1/adapters/${id}/export`, { headers: auth });
    assertEquals(exported.status, 200);
    assert_(/attachment/.test(exported.headers.get("content-disposition") ?? ""));
    const file = await exported.json();
    const post = (body: unknown, headers: HeadersInit = auth) =>
      app.request("/v1/adapters/import", {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const imported = await post(file);
    assertEquals(imported.status, 201);
    const rec = await imported.json();
    assertEquals([rec.importedFrom, rec.bundle, rec.step], [id, "tiny-diffusion@1.0.0", 10]);
    const lora = await store.adapterLora((await store.getAdapter(rec.id))!);
    assertEquals(
      Array.from(new Float32Array(lora.slice().buffer)),
      Array.from(state.subarray(0, floats)),
    );
    // tampered: other bytes, another size, a bundle not served
    const bytes = Uint8Array.from(atob(file.lora), (ch) => ch.charCodeAt(0));
    bytes[0] ^= 1;
    const flipped = btoa(String.fromCharCode(...bytes));
    for (
      const [body, code] of [
        [{ ...file, lora: flipped }, "corrupted-adapter"],
        [{ ...file, adapter: { ...file.adapter, bundle: "nope@1" } }, "unknown-bundle"],
        [{
          ...file,
          lora: btoa("abcd"),
          sha256: "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589",
        }, "adapter-bundle-mismatch"],
        [{ ...file, format: "other" }, "invalid-request"],
      ] as const
    ) {
      const r = await post(body);
      assertEquals((await r.json()).code, code);
    }
    // a viewer may export (read) but not import
    const viewer = { authorization: `Bearer ${(await store.createApiKey("v", "viewer")).key}` };
    assertEquals((await app.request(`/v1/adapters/${id}/export`, { headers: viewer })).status, 200);
    assertEquals((await post(file, viewer)).status, 403);
  } finally {
    close();
  }
});

Deno.test("private jobs: their owner and admins see them; other members get 404 everywhere", async () => {
  const { app, store, close } = await inProcessApp();
  try {
    const bearer = async (role: "admin" | "member") => ({
      authorization: `Bearer ${(await store.createApiKey(role, role)).key}`,
    });
    const [owner, other, admin] = [
      await bearer("member"),
      await bearer("member"),
      await bearer("admin"),
    ];
    const fd = new FormData();
    fd.append("image", new Blob([png.slice()], { type: "image/png" }), "x.png");
    fd.append("options", JSON.stringify({ private: true }));
    const r = await app.request("/v1/classify?wait=false", {
      method: "POST",
      body: fd,
      headers: owner,
    });
    assertEquals(r.status, 202);
    const id = (await r.json()).job.id;
    const status = async (path: string, headers: HeadersInit, method = "GET") =>
      (await app.request(path, { method, headers })).status;
    for (const path of [`/v1/jobs/${id}`, `/v1/jobs/${id}/verdicts`]) {
      assertEquals(await status(path, owner), 200, `owner ${path}`);
      assertEquals(await status(path, admin), 200, `admin ${path}`);
      assertEquals(await status(path, other), 404, `other ${path}`);
    }
    assertEquals(await status(`/v1/jobs/${id}`, other, "DELETE"), 404, "no cancelling it either");
    const list = async (headers: HeadersInit) =>
      (await (await app.request("/v1/jobs?kind=classify", { headers })).json()).jobs
        .map((j: { id: string }) => j.id);
    assertEquals([await list(owner), await list(admin), await list(other)], [[id], [id], []]);
    // a private evaluation is left out of another member's listing and report
    const ev = await app.request("/v1/evaluations", {
      method: "POST",
      headers: { ...owner, "content-type": "application/json" },
      body: JSON.stringify({
        target: { bundle: "resnet8-fmnist" },
        source: { kind: "surrogate", bundle: "resnet8-fmnist" },
        attack: { attack: "fgsm", norm: "linf", eps: 0.05 },
        dataset: { name: "fashion-mnist-test", n: 2, seed: 0 },
        private: true,
      }),
    });
    const evId = (await ev.json()).job.id;
    assertEquals(await status(`/v1/evaluations/${evId}`, other), 404);
    assertEquals(await status(`/v1/evaluations/${evId}`, owner), 200);
  } finally {
    close();
  }
});

Deno.test("a key made before roles existed (no role, no id index) is an admin's and can be revoked", async () => {
  const { Store } = await import("../store/kv_store.ts");
  const store = await Store.open(`${await Deno.makeTempDir({ prefix: "tmdc-oldkey-" })}/kv`);
  try {
    const key = "tmdc_old-key-0123456789";
    await store.__testing.plantLegacyApiKey(key, "old-id", "old");
    assertEquals((await store.verifyApiKey(key))?.id, "old-id");
    const listed = await store.listApiKeys();
    assertEquals(listed.map((k) => [k.id, k.role ?? "admin"]), [["old-id", "admin"]]);
    const revoked = await store.revokeApiKey("old-id", "cli");
    assert_(revoked?.revokedAt, "revoked");
    assertEquals(await store.verifyApiKey(key), null, "refused from then on");
  } finally {
    store.close();
  }
});
