/** The HTTP API in-process (app.request): validation, problem+json, nothing stored on error. */
import { assertEquals } from "./assert.ts";
import { customApp } from "./http_helpers.ts";
import { fashionPngs, FAST_SETTINGS, inProcessApp, storedKeys } from "./service_helpers.ts";
import { PAPER_SETTINGS } from "../lib/dc_settings.ts";
import sharp from "sharp";
import { defaultSettings } from "../lib/dc_settings.ts";
import { unetCalls } from "../lib/diffusion_classifier.ts";
import type { DiffusionManifest } from "../lib/bundle_manifest.ts";

const [{ png }] = await fashionPngs(1);

function form(files: Uint8Array[], options?: unknown): FormData {
  const fd = new FormData();
  files.forEach((f, i) =>
    fd.append("image", new Blob([f.slice()], { type: "image/png" }), `img${i}.png`)
  );
  if (options) fd.append("options", JSON.stringify(options));
  return fd;
}

async function expectProblem(res: Response, status: number, code: string) {
  assertEquals(res.status, status);
  assertEquals(res.headers.get("content-type"), "application/problem+json");
  const body = await res.json();
  assertEquals(body.status, status);
  assertEquals(body.code, code, body.detail);
  return body;
}

Deno.test("bad input gets a clear problem+json 4xx and stores nothing", async (t) => {
  const { app, store, key, close } = await inProcessApp();
  const auth = { authorization: `Bearer ${key}` };
  const cases: [string, () => Response | Promise<Response>, number, string][] = [
    [
      "non-image bytes",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: { ...auth, "content-type": "image/png" },
          body: new TextEncoder().encode("definitely not a png"),
        }),
      422,
      "invalid-image",
    ],
    [
      "truncated PNG",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: auth,
          body: form([png.subarray(0, png.length - 30)]),
        }),
      422,
      "invalid-image",
    ],
    [
      "one bad image among good ones",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: auth,
          body: form([png, png.subarray(0, 40)]),
        }),
      422,
      "invalid-image",
    ],
    [
      "oversize upload",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: { ...auth, "content-type": "image/png" },
          body: new Uint8Array(9 * 1024 * 1024),
        }),
      413,
      "body-too-large",
    ],
    [
      "huge dimensions",
      () => app.request("/v1/classify", { method: "POST", headers: auth, body: form([hugePng()]) }),
      422,
      "invalid-image",
    ],
    [
      "wrong API key",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: { authorization: "Bearer tmdc_wrong" },
          body: form([png]),
        }),
      401,
      "invalid-api-key",
    ],
    [
      "missing API key",
      () => app.request("/v1/classify", { method: "POST", body: form([png]) }),
      401,
      "missing-api-key",
    ],
    [
      "unknown bundle",
      () =>
        app.request("/v1/classify?bundle=nope", {
          method: "POST",
          headers: auth,
          body: form([png]),
        }),
      404,
      "unknown-bundle",
    ],
    [
      "DC settings for a classifier bundle",
      () =>
        app.request("/v1/classify?bundle=resnet8-fmnist", {
          method: "POST",
          headers: auth,
          body: form([png], { settings: { gridSize: 8 } }),
        }),
      422,
      "invalid-settings",
    ],
    [
      "unknown adapter",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: auth,
          body: form([png], { adapter: "nope" }),
        }),
      404,
      "unknown-adapter",
    ],
    [
      "settings of the wrong type",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: auth,
          body: form([png], { settings: { gridSize: "big" } }),
        }),
      400,
      "invalid-request",
    ],
    [
      "unknown settings field",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: auth,
          body: form([png], { settings: { temperature: 3 } }),
        }),
      400,
      "invalid-request",
    ],
    [
      "last stage keeps 2 classes",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: auth,
          body: form([png], { settings: { stages: [{ nSamples: 4, keep: 2 }], gridSize: 8 } }),
        }),
      422,
      "invalid-settings",
    ],
    [
      "keep more classes than exist",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: auth,
          body: form([png], {
            settings: {
              stages: [{ nSamples: 4, keep: 11 }, { nSamples: 8, keep: 1 }],
              gridSize: 8,
            },
          }),
        }),
      422,
      "invalid-settings",
    ],
    [
      "over the UNet-call quota",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: auth,
          body: form([png], {
            settings: {
              stages: [{ nSamples: 1000, keep: 10 }, { nSamples: 1000, keep: 1 }],
              gridSize: 1000,
              tRange: [0, 1000],
            },
          }),
        }),
      422,
      "quota-exceeded",
    ],
    [
      "malformed options JSON",
      () => {
        const fd = form([png]);
        fd.append("options", "{nope");
        return app.request("/v1/classify", { method: "POST", headers: auth, body: fd });
      },
      400,
      "invalid-request",
    ],
    [
      "no image",
      () => app.request("/v1/classify", { method: "POST", headers: auth, body: form([]) }),
      400,
      "no-image",
    ],
    [
      "text body",
      () =>
        app.request("/v1/classify", {
          method: "POST",
          headers: { ...auth, "content-type": "text/plain" },
          body: "x",
        }),
      415,
      "unsupported-media-type",
    ],
    [
      "unknown job",
      () => app.request("/v1/jobs/00000000-0000-0000-0000-000000000000", { headers: auth }),
      404,
      "unknown-job",
    ],
    [
      "unknown verdict",
      () => app.request("/v1/verdicts/garbage", { headers: auth }),
      404,
      "unknown-verdict",
    ],
  ];
  for (const [name, req, status, code] of cases) {
    await t.step(name, async () => {
      await expectProblem(await req(), status, code);
      assertEquals(await storedKeys(store), [], "nothing may be stored");
    });
  }
  close();
});

Deno.test("a 401 carries WWW-Authenticate; unknown routes are problem+json", async () => {
  const { app, key, close } = await inProcessApp();
  const r = await app.request("/v1/jobs/x");
  assertEquals(r.headers.get("www-authenticate"), 'Bearer realm="tmdc"');
  await r.body?.cancel();
  // Without a key an unknown /v1 route is 401 too: route existence is not revealed.
  await expectProblem(
    await app.request("/v1/nope", { headers: { authorization: `Bearer ${key}` } }),
    404,
    "no-route",
  );
  await expectProblem(await app.request("/nope"), 404, "no-route");
  close();
});

Deno.test("health, models and OpenAPI are served; the OpenAPI settings schema is the validating one", async () => {
  const { app, close } = await inProcessApp();
  assertEquals((await (await app.request("/v1/health")).json()).status, "ok");
  const models = await (await app.request("/v1/models")).json();
  assertEquals(models.models.map((m: { id: string }) => m.id).sort(), [
    "resnet8-fmnist@1.0.0",
    "tiny-diffusion@1.0.0",
  ]);
  const doc = await (await app.request("/v1/openapi.json")).json();
  assertEquals(doc.openapi, "3.1.0");
  assertEquals(doc.components.schemas.DCSettings.additionalProperties, false);
  assertEquals(doc.components.schemas.DCSettings.properties.error.enum, ["l2", "l1"]);
  close();
});

Deno.test("with no worker online a small request answers 202 with a Location, and the job is queued", async () => {
  const { app, store, key, close } = await inProcessApp();
  const r = await app.request("/v1/classify", {
    method: "POST",
    headers: { authorization: `Bearer ${key}` },
    body: form([png, png], { settings: FAST_SETTINGS }),
  });
  assertEquals(r.status, 202);
  const { job } = await r.json();
  assertEquals(r.headers.get("location"), `/v1/jobs/${job.id}`);
  assertEquals(job.status, "queued");
  assertEquals((await store.listUnits(job.id)).length, 2);
  const again =
    await (await app.request(`/v1/jobs/${job.id}`, { headers: { authorization: `Bearer ${key}` } }))
      .json();
  assertEquals([again.total, again.done, again.progress], [2, 0, 0]);
  close();
});

Deno.test("a job interrupted while being created is removed at start-up", async () => {
  const { store, close } = await inProcessApp();
  const job = await store.__testing.createInterruptedJob(
    {
      kind: "classify",
      owner: "test",
      bundle: "tiny-diffusion",
      adapter: null,
      settings: PAPER_SETTINGS,
    },
    [{
      pixels: new Uint8Array(784),
      input: {
        name: "x.png",
        source: { format: "png", width: 28, height: 28, channels: 1 },
        conversion: [],
        decoder: "test",
      },
    }],
  );
  assertEquals((await storedKeys(store)).length > 0, true);
  assertEquals(await store.recover(), [job.id]);
  assertEquals(await storedKeys(store), []);
  close();
});

/** A valid PNG header declaring 30000×30000 pixels. */
function hugePng(): Uint8Array {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Uint8Array) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Uint8Array) => {
    const out = new Uint8Array(12 + data.length);
    const v = new DataView(out.buffer);
    v.setUint32(0, data.length);
    out.set(new TextEncoder().encode(type), 4);
    out.set(data, 8);
    v.setUint32(8 + data.length, crc(out.subarray(4, 8 + data.length)));
    return out;
  };
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, 30000);
  v.setUint32(4, 30000);
  ihdr.set([8, 0, 0, 0, 0], 8);
  const parts = [
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}

Deno.test("every route that takes a body has a limit: 413 body-too-large, nothing stored", async () => {
  const { app, store, auth, close } = await customApp({
    limits: { maxJsonBytes: 2000, maxDatasetBytes: 1000 },
  });
  const json = JSON.stringify({ padding: "x".repeat(3000) });
  for (const path of ["/v1/evaluations", "/v1/finetunes"]) {
    // with a content-length (refused before reading) and streamed without one
    const sized = await app.request(path, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: json,
    });
    await expectProblem(sized, 413, "body-too-large");
    const streamed = await app.request(path, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: ReadableStream.from([new TextEncoder().encode(json)]),
    });
    await expectProblem(streamed, 413, "body-too-large");
  }
  const fd = form([png, png, png, png]);
  fd.append("labels", "[0,1,2,3]");
  await expectProblem(
    await app.request("/v1/datasets", { method: "POST", headers: auth, body: fd }),
    413,
    "body-too-large",
  );
  assertEquals(await storedKeys(store), []);
  close();
});

/** A multipart body of `n` parts, each an empty file. */
function emptyParts(n: number): Uint8Array<ArrayBuffer> {
  const part = '--b\r\nContent-Disposition: form-data; name="image"; filename="a"\r\n\r\n\r\n';
  return new TextEncoder().encode(part.repeat(n) + "--b--\r\n");
}

Deno.test("multipart parts are capped while streaming: 100,000 empty parts are refused at once", async () => {
  const { app, key, close } = await inProcessApp();
  const headers = {
    authorization: `Bearer ${key}`,
    "content-type": "multipart/form-data; boundary=b",
  };
  const body = emptyParts(100_000); // 6.9 MB: under the 8 MB classify body limit
  for (const path of ["/v1/classify", "/v1/datasets"]) {
    // a 10 ms ticker measures how long the event loop is held (formData(): ~4 s here)
    let last = performance.now(), stall = 0;
    const tick = setInterval(() => {
      const t = performance.now();
      stall = Math.max(stall, t - last);
      last = t;
    }, 10);
    const t0 = performance.now();
    const r = await app.request(path, { method: "POST", headers, body });
    const ms = performance.now() - t0;
    stall = Math.max(stall, performance.now() - last);
    clearInterval(tick);
    await expectProblem(r, 413, "too-many-images");
    console.log(
      `${path}: 100,000 empty parts → 413 in ${ms.toFixed(0)} ms, stall ${stall.toFixed(0)} ms`,
    );
    assertEquals(stall < 1000, true, `the event loop was held ${stall.toFixed(0)} ms`);
  }
  close();
});

Deno.test("PUT/DELETE on a known path: 405 with Allow; unknown paths stay 404", async () => {
  const { app, key, close } = await inProcessApp();
  const auth = { authorization: `Bearer ${key}` };
  const id = "00000000-0000-0000-0000-000000000000";
  const cases: [string, string, string][] = [
    ["PUT", "/v1/evaluations", "POST"],
    ["PUT", `/v1/jobs/${id}`, "DELETE, GET, HEAD"],
    ["PUT", `/v1/datasets/${id}`, "GET, HEAD"],
    ["DELETE", "/v1/classify", "POST"],
    ["PUT", "/v1/health", "GET, HEAD"],
    ["DELETE", "/docs", "GET, HEAD"],
  ];
  for (const [method, path, allow] of cases) {
    const r = await app.request(path, { method, headers: auth });
    await expectProblem(r, 405, "method-not-allowed");
    assertEquals(r.headers.get("allow"), allow, `${method} ${path}`);
  }
  await expectProblem(
    await app.request("/v1/nope", { method: "PUT", headers: auth }),
    404,
    "no-route",
  );
  // without a key the /v1 API still answers 401 first: a path's existence is not revealed
  assertEquals((await app.request(`/v1/jobs/${id}`, { method: "DELETE" })).status, 401);
  close();
});

Deno.test("a JSON route: malformed JSON and a non-JSON media type are problem+json", async () => {
  const { app, key, close } = await inProcessApp();
  const post = (type: string, body: string) =>
    app.request("/v1/evaluations", {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": type },
      body,
    });
  await expectProblem(await post("application/json", "{nope"), 400, "invalid-request");
  await expectProblem(await post("text/plain", "{}"), 415, "unsupported-media-type");
  const invalid = await expectProblem(
    await post("application/json", JSON.stringify({ dataset: { name: "cifar10" } })),
    400,
    "invalid-request",
  );
  assertEquals(invalid.errors.some((e: { path: string }) => e.path === "attack"), true);
  close();
});

Deno.test("the page: a CSP forbidding inline scripts, its script served apart, security headers", async () => {
  const { app, close } = await inProcessApp();
  try {
    const page = await app.request("/");
    assertEquals(page.status, 200);
    const csp = page.headers.get("content-security-policy") ?? "";
    for (const d of ["script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"]) {
      assertEquals(csp.includes(d), true, `${d} in ${csp}`);
    }
    assertEquals(page.headers.get("x-content-type-options"), "nosniff");
    const html = await page.text();
    // every <script> names its source: the CSP would block an inline one
    assertEquals([...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>/g)].length, 0, html);
    const js = await app.request("/page.js");
    assertEquals(js.status, 200);
    assertEquals(js.headers.get("content-type"), "text/javascript; charset=utf-8");
    // what workers report about themselves reaches the page only through esc()
    const text = await js.text();
    assertEquals(/\+ v\.worker\.(provider|id) \+/.test(text), false);
  } finally {
    await close();
  }
});

Deno.test("cost control: failed authentications, thin strips and over-quota evaluations", async () => {
  const { app, auth, store, close } = await customApp({
    limits: { maxAuthFailures: 3, authWindowMs: 60_000, maxEvaluationCalls: 100_000 },
  });
  try {
    // a client that keeps guessing keys is told to wait, before any key is looked at
    const from = (ip: string) => ({ incoming: { socket: { remoteAddress: ip } } });
    const get = (headers: HeadersInit, ip: string) =>
      app.request("/v1/jobs/none", { headers }, from(ip));
    for (let i = 0; i < 3; i++) {
      await expectProblem(
        await get({ authorization: "Bearer wrong" }, "10.0.0.1"),
        401,
        "invalid-api-key",
      );
    }
    const blocked = await get({ authorization: "Bearer wrong" }, "10.0.0.1");
    await expectProblem(blocked, 429, "too-many-auth-failures");
    const wait = Number(blocked.headers.get("retry-after"));
    assertEquals(wait > 0 && wait <= 60, true, `Retry-After ${wait}`);
    // a key that verifies is let in all the same: a guesser cannot lock the team out
    await expectProblem(await get(auth, "10.0.0.1"), 404, "unknown-job");
    // another address is not affected
    await expectProblem(await get(auth, "10.0.0.2"), 404, "unknown-job");

    // a 400×4 strip is refused from its header
    const strip = await sharp({
      create: { width: 400, height: 4, channels: 3, background: { r: 0, g: 0, b: 0 } },
    }).png().toBuffer();
    const before = await storedKeys(store);
    const r = await app.request("/v1/classify", {
      method: "POST",
      body: form([new Uint8Array(strip)]),
      headers: auth,
    });
    const body = await expectProblem(r, 422, "invalid-image");
    assertEquals(/differ by more than 16×/.test(body.detail), true, body.detail);

    // images × the attack's evaluations × each one's cost, against the request quota
    const post = (n: number) =>
      app.request("/v1/evaluations", {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({
          target: { bundle: "tiny-diffusion" },
          source: { kind: "surrogate", bundle: "resnet8-fmnist" },
          attack: { attack: "pgd", norm: "linf", eps: 0.05, steps: 100 },
          dataset: { name: "fashion-mnist-test", n, seed: 0 },
        }),
      });
    await expectProblem(await post(10_000), 422, "over-quota");
    assertEquals(await storedKeys(store), before, "nothing stored");
    assertEquals((await post(4)).status, 202);
  } finally {
    await close();
  }
});

Deno.test("operations: /v1/ready says why it is not ready; every answer has a request id", async () => {
  const { app, store, close } = await customApp({ config: { readyProbeMs: 0 } });
  try {
    const before = await storedKeys(store);
    const r = await app.request("/v1/ready");
    assertEquals(r.status, 503);
    const body = await r.json();
    assertEquals(body.status, "not-ready");
    assertEquals(body.checks.workers, 0);
    assertEquals(body.checks.kv_writable, true);
    assertEquals(body.checks.default_bundle, "tiny-diffusion@1.0.0");
    assertEquals(body.problems, ["no worker is connected"]);
    assertEquals(await storedKeys(store), before, "the KV probe leaves nothing");
    assertEquals((r.headers.get("x-request-id") ?? "").length > 0, true);
    const echoed = await app.request("/v1/health", { headers: { "x-request-id": "abc-123" } });
    assertEquals(echoed.headers.get("x-request-id"), "abc-123");
    // a KV that refuses writes is reported, not thrown
    store.close();
    const down = await (await app.request("/v1/ready")).json();
    assertEquals(down.checks.kv_writable, false);
  } finally {
    try {
      close();
    } catch {
      // closed above
    }
  }
});

Deno.test("operations: /metrics needs a key and counts requests by route pattern", async () => {
  const { app, auth, close } = await customApp();
  try {
    assertEquals((await app.request("/metrics")).status, 401);
    await app.request("/v1/health");
    await app.request("/v1/jobs/one", { headers: auth });
    await app.request("/v1/jobs/two", { headers: auth });
    const r = await app.request("/metrics", { headers: auth });
    assertEquals(r.status, 200);
    assertEquals(r.headers.get("content-type")?.startsWith("text/plain"), true);
    const text = await r.text();
    for (
      const line of [
        'tmdc_http_requests_total{method="GET",route="/v1/health",status="200"} 1',
        // one series for both ids: the route's pattern, not its path
        'tmdc_http_requests_total{method="GET",route="/v1/jobs/:id",status="404"} 2',
        "tmdc_queue_depth 0",
        "tmdc_workers_connected 0",
      ]
    ) assertEquals(text.includes(line), true, `${line} in\n${text}`);
  } finally {
    close();
  }
});

Deno.test("quotas per key: jobs with work left and model calls per day, 429 with Retry-After", async () => {
  type App = { request: (path: string, init?: RequestInit) => Response | Promise<Response> };
  const classifyAs = async (app: App, headers: HeadersInit, n = 1) =>
    await app.request("/v1/classify?wait=false", {
      method: "POST",
      body: form(Array.from({ length: n }, () => png)),
      headers,
    });
  const active = await customApp({ limits: { quotaActiveJobs: 2 } });
  let perImage = 0;
  try {
    for (let i = 0; i < 2; i++) {
      assertEquals((await classifyAs(active.app, active.auth)).status, 202);
    }
    const r = await classifyAs(active.app, active.auth);
    await expectProblem(r, 429, "too-many-active-jobs");
    assertEquals(r.headers.get("retry-after"), "30");
    const other = `Bearer ${(await active.store.createApiKey("other")).key}`;
    assertEquals((await classifyAs(active.app, { authorization: other })).status, 202, "per key");
    // the tiny bundle's default settings cost this many UNet calls an image
    const m = active.registry.resolve("tiny-diffusion")!.manifest as DiffusionManifest;
    perImage = unetCalls(defaultSettings(m), m.classes.length);
  } finally {
    active.close();
  }
  const daily = await customApp({ limits: { quotaActiveJobs: 0, quotaDailyCalls: 3 * perImage } });
  try {
    assertEquals((await classifyAs(daily.app, daily.auth, 2)).status, 202); // 2 of 3 images' worth
    const r = await classifyAs(daily.app, daily.auth, 2);
    const body = await expectProblem(r, 429, "over-daily-quota");
    assertEquals(body.used, 2 * perImage);
    const wait = Number(r.headers.get("retry-after"));
    assertEquals(wait > 0 && wait <= 86_400, true, `Retry-After ${wait}`);
    assertEquals((await classifyAs(daily.app, daily.auth, 1)).status, 202, "what fits still does");
  } finally {
    daily.close();
  }
});

Deno.test("CORS: only the configured origins", async () => {
  const { app, close } = await customApp();
  const none = await app.request("/v1/health", { headers: { origin: "https://evil.example" } });
  assertEquals(none.headers.get("access-control-allow-origin"), null, "none by default");
  close();
  const { app: app2, close: close2 } = await customApp({
    config: { corsOrigins: ["https://lab.example"] },
  });
  try {
    const pre = await app2.request("/v1/classify", {
      method: "OPTIONS",
      headers: {
        origin: "https://lab.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization",
      },
    });
    assertEquals(pre.headers.get("access-control-allow-origin"), "https://lab.example");
    const other = await app2.request("/v1/health", { headers: { origin: "https://evil.example" } });
    assertEquals(other.headers.get("access-control-allow-origin"), null);
  } finally {
    close2();
  }
});
