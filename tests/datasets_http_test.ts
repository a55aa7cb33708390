/** POST /v1/datasets: uploaded labelled sets are checked before anything is stored. */
import { assertEquals } from "./assert.ts";
import { fashionPngs, inProcessApp, storedKeys } from "./service_helpers.ts";

Deno.test("uploaded labelled sets: bad uploads are refused and store nothing; a good one is used by an evaluation", async (t) => {
  const { app, store, key, close } = await inProcessApp();
  const pngs = await fashionPngs(3);
  const auth = { authorization: `Bearer ${key}` };
  const form = (
    labels: unknown,
    files = pngs.map((p) => p.png),
    extra: Record<string, string> = {},
  ) => {
    const fd = new FormData();
    files.forEach((b, i) =>
      fd.append("image", new Blob([b.slice()], { type: "image/png" }), `${i}.png`)
    );
    if (labels !== undefined) {
      fd.append("labels", typeof labels === "string" ? labels : JSON.stringify(labels));
    }
    for (const [k, v] of Object.entries(extra)) fd.append(k, v);
    return fd;
  };
  const labels = pngs.map((p) => p.label);
  const cases: [string, FormData | string, number, string][] = [
    ["not multipart", "{}", 415, "unsupported-media-type"],
    ["labels missing", form(undefined), 400, "invalid-request"],
    ["labels not JSON", form("[1,"), 400, "invalid-request"],
    ["labels not integers", form([0.5, 1, 2]), 400, "invalid-request"],
    ["wrong label count", form([1, 2]), 422, "label-count-mismatch"],
    ["label out of range (10 classes)", form([1, 2, 10]), 422, "invalid-label"],
    ["negative label", form([1, -1, 2]), 422, "invalid-label"],
    [
      "malformed image",
      form(labels, [pngs[0].png, pngs[1].png.slice(0, 40), pngs[2].png]),
      422,
      "invalid-image",
    ],
    ["unknown bundle", form(labels, undefined, { bundle: "nope" }), 404, "unknown-bundle"],
    ["unexpected field", form(labels, undefined, { priority: "1" }), 400, "invalid-request"],
    ["no images", form([], []), 400, "no-image"],
  ];
  for (const [name, body, status, code] of cases) {
    await t.step(name, async () => {
      const r = await app.request("/v1/datasets", {
        method: "POST",
        headers: typeof body === "string" ? { ...auth, "content-type": "application/json" } : auth,
        body,
      });
      assertEquals(r.status, status);
      assertEquals(r.headers.get("content-type"), "application/problem+json");
      assertEquals((await r.json()).code, code);
      assertEquals(await storedKeys(store), [], "nothing may be stored");
    });
  }
  const ok = await app.request("/v1/datasets", {
    method: "POST",
    headers: auth,
    body: form(labels, undefined, { name: "three" }),
  });
  assertEquals(ok.status, 201);
  const ds = await ok.json();
  assertEquals([ds.n, ds.name, ds.labels, ds.numClasses], [3, "three", labels, 10]);
  const got = await (await app.request(`/v1/datasets/${ds.id}`, { headers: auth })).json();
  assertEquals(got.sha256, ds.sha256);
  // the team's sets, listed (without pixels or owner)
  const listed = await (await app.request("/v1/datasets?limit=10", { headers: auth })).json();
  assertEquals([listed.datasets.map((d: { id: string }) => d.id), listed.next], [[ds.id], null]);
  assertEquals("pixelsBlob" in listed.datasets[0] || "owner" in listed.datasets[0], false);

  const evaluate = (dataset: unknown) =>
    app.request("/v1/evaluations", {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({
        target: { bundle: "resnet8-fmnist" },
        source: { kind: "surrogate", bundle: "resnet8-fmnist" },
        attack: { attack: "fgsm", norm: "linf", eps: 0.05 },
        dataset,
      }),
    });
  const unknown = await evaluate({ name: "uploaded", id: "00000000-0000-0000-0000-000000000000" });
  assertEquals([unknown.status, (await unknown.json()).code], [404, "unknown-dataset"]);
  const queued = await evaluate({ name: "uploaded", id: ds.id });
  assertEquals(queued.status, 202);
  const { job } = await queued.json();
  assertEquals([job.total, job.evaluation.dataset.n, job.evaluation.dataset.sha256], [
    1,
    3,
    ds.sha256,
  ]);
  close();
});
