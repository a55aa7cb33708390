/**
 * /v1/openapi.json is generated from the route definitions that validate requests. Here: two
 * independent linters accept it, the README's request bodies validate against it (so the
 * README cannot drift from the API), and /docs renders it from locally served assets.
 */
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { EvaluationRequest } from "../service/jobs/evaluation.ts";
import { FinetuneRequest } from "../service/jobs/finetune.ts";
import { ClassifyOptions } from "../service/jobs/classify.ts";
import { assert_, assertEquals } from "./assert.ts";
import { REPO } from "./helpers.ts";
import { inProcessApp } from "./service_helpers.ts";

// deno-lint-ignore no-explicit-any
type Doc = any;

async function documentFile(): Promise<{ doc: Doc; path: string }> {
  const { app, close } = await inProcessApp();
  const doc = await (await app.request("/v1/openapi.json")).json();
  close();
  const path = join(await Deno.makeTempDir({ prefix: "tmdc-openapi-" }), "openapi.json");
  await Deno.writeTextFile(path, JSON.stringify(doc, null, 2));
  return { doc, path };
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  try {
    await Deno.stat(cmd);
  } catch {
    throw new Error(`${cmd} is missing: run scripts/setup.sh`);
  }
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("openapi-spec-validator (PyPI) finds no error in the generated document", async () => {
  const { path } = await documentFile();
  const r = await run(join(REPO, ".venv/bin/openapi-spec-validator"), [
    "--schema",
    "3.1",
    "--validation-errors",
    "all",
    path,
  ]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assert_(r.stdout.includes(": OK"), r.stdout);
});

Deno.test("redocly lint (npm @redocly/cli, recommended rules) reports 0 errors", async () => {
  const { path } = await documentFile();
  const r = await run(
    join(REPO, ".tools/node_modules/.bin/redocly"),
    ["lint", "--format=json", path],
    { REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
  );
  const report = JSON.parse(r.stdout.slice(r.stdout.indexOf("{")));
  const errors = report.problems.filter((p: { severity: string }) => p.severity === "error");
  assertEquals(report.totals.errors, 0, JSON.stringify(errors, null, 1));
  assertEquals(r.code, 0, r.stderr);
});

Deno.test("the document: every operation documents a 2xx body schema; requests are in input mode", async () => {
  const { doc } = await documentFile();
  assertEquals(doc.openapi, "3.1.0");
  let operations = 0;
  for (const [path, item] of Object.entries<Doc>(doc.paths)) {
    for (const [method, op] of Object.entries<Doc>(item)) {
      operations++;
      const ok = Object.entries<Doc>(op.responses).filter(([s]) => /^2\d\d$/.test(s));
      assert_(ok.length > 0, `${method} ${path} documents no 2xx response`);
      for (const [status, res] of ok) {
        const media = Object.values<Doc>(res.content ?? {});
        assert_(
          media.length > 0 && media.every((m) => m.schema),
          `${method} ${path} ${status} has no schema`,
        );
      }
      assert_(op.operationId, `${method} ${path} has no operationId`);
    }
  }
  assertEquals(operations, 26);
  // defaulted fields are optional in requests: only what has no default is required
  const schemas = doc.components.schemas;
  assertEquals(schemas.EvaluationRequest.required, ["target", "source", "attack", "dataset"]);
  assertEquals(schemas.FinetuneRequest.required, undefined);
  assertEquals(schemas.AttackConfig.required, ["attack", "norm", "eps"]);
  assertEquals(schemas.DCSettings.required, undefined);
  assertEquals(schemas.DCSettings.additionalProperties, false);
});

/** The JSON after `marker` up to its closing single quote, for every occurrence. */
function quotedJsonAfter(text: string, marker: RegExp): unknown[] {
  const out: unknown[] = [];
  for (const m of text.matchAll(marker)) {
    const start = m.index! + m[0].length;
    out.push(JSON.parse(text.slice(start, text.indexOf("'", start))));
  }
  return out;
}

Deno.test("every request body in README.md validates against the document (and the zod schema)", async () => {
  const { doc } = await documentFile();
  const readme = await Deno.readTextFile(join(REPO, "README.md"));
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat("uuid", /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  ajv.addSchema({ ...doc, $id: "tmdc" });
  const validator = (pointer: Doc) => ajv.compile({ $ref: `tmdc#/components/schemas/${pointer}` });
  const refName = (schema: Doc) => schema.$ref.split("/").pop();

  const cases = [
    {
      what: "POST /v1/evaluations",
      bodies: quotedJsonAfter(readme, /\/v1\/evaluations -d '/g),
      schema: refName(
        doc.paths["/v1/evaluations"].post.requestBody.content["application/json"].schema,
      ),
      zod: EvaluationRequest,
    },
    {
      what: "POST /v1/finetunes",
      bodies: quotedJsonAfter(readme, /\/v1\/finetunes -d '/g),
      schema: refName(
        doc.paths["/v1/finetunes"].post.requestBody.content["application/json"].schema,
      ),
      zod: FinetuneRequest,
    },
    {
      what: "POST /v1/classify options",
      bodies: quotedJsonAfter(readme, /-F 'options=/g),
      schema: refName(
        doc.paths["/v1/classify"].post.requestBody.content["multipart/form-data"].schema.properties
          .options,
      ),
      zod: ClassifyOptions,
    },
  ];
  for (const { what, bodies, schema, zod } of cases) {
    assert_(bodies.length > 0, `README.md has no ${what} body`);
    const validate = validator(schema);
    for (const body of bodies) {
      assert_(validate(body), `${what}: ${JSON.stringify(validate.errors)}`);
      const parsed = zod.safeParse(body);
      assert_(parsed.success, `${what}: ${parsed.error?.message}`);
      // the document is not merely permissive: an unknown field is refused
      assert_(!validate({ ...(body as object), surplus: 1 }), `${what} accepts unknown fields`);
    }
  }
});

Deno.test("/docs renders the document with Swagger UI served by the frontend itself", async () => {
  const { app, close } = await inProcessApp();
  const page = await app.request("/docs");
  assertEquals(page.status, 200);
  assert_(page.headers.get("content-type")!.startsWith("text/html"));
  const html = await page.text();
  assert_(!/(src|href)="https?:/.test(html), "no asset may come from another host");
  const assets = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  assert_(assets.includes("/docs/swagger-ui-bundle.js") && assets.includes("/docs/swagger-ui.css"));
  for (const a of assets) {
    const r = await app.request(a);
    assertEquals(r.status, 200, a);
    const body = new Uint8Array(await r.arrayBuffer());
    assert_(body.length > 0, `${a} is empty`);
  }
  const init = await (await app.request("/docs/init.js")).text();
  assert_(init.includes('"/v1/openapi.json"'), "the page renders this service's document");
  assertEquals((await app.request("/docs/../deno.json")).status, 404);
  close();
});
