/**
 * deploy/: what can be checked without a container runtime (this machine has a Docker client but
 * no daemon or compose plugin): the images build from a clean context as a non-root user, the
 * frontend image has a health check, the compose file runs a frontend, two workers and a denokv
 * sharing the tokens, and the systemd worker unit is instantiated by GPU index.
 */
import { join } from "node:path";
import { assert_, assertEquals } from "./assert.ts";
import { REPO } from "./helpers.ts";

const read = (p: string) => Deno.readTextFile(join(REPO, p));

Deno.test("deploy: images from a clean context, non-root, with a health check", async () => {
  const ignore = (await read(".dockerignore")).split("\n").map((l) => l.trim());
  for (const p of [".git", ".venv", ".tools", "node_modules", "data", "runs", "*.kv"]) {
    assert_(ignore.includes(p), `.dockerignore keeps ${p} out`);
  }
  for (const f of ["deploy/Containerfile.frontend", "deploy/Containerfile.worker"]) {
    const text = await read(f);
    const lines = text.split("\n");
    const user = lines.findIndex((l) => /^USER tmdc\b/.test(l));
    const cmd = lines.findIndex((l) => l.startsWith("CMD "));
    assert_(user > 0 && user < cmd, `${f}: runs as tmdc`);
    assert_(/COPY --chown=tmdc:tmdc \. \./.test(text), `${f}: copies the context as tmdc`);
    assert_(/deno@2\.9\.6/.test(text), `${f}: the pinned Deno`);
  }
  const frontend = await read("deploy/Containerfile.frontend");
  assert_(/HEALTHCHECK[\s\S]*\/v1\/health/.test(frontend), "the frontend image checks /v1/health");
  assert_(/dataset-fashion-mnist/.test(frontend), "the frontend has the data it checks ε with");
});

Deno.test("deploy: compose runs denokv, a frontend and two workers on shared tokens", async () => {
  const text = await read("deploy/compose.yaml");
  const block = text.slice(text.indexOf("\nservices:"), text.indexOf("\nvolumes:"));
  const services = [...block.matchAll(/^ {2}([a-z0-9-]+):/gm)].map((m) => m[1]);
  assertEquals(services, ["denokv", "frontend", "worker-0", "worker-1"]);
  assert_(/image: ghcr\.io\/denoland\/denokv:\d+\.\d+\.\d+/.test(text), "a pinned denokv");
  assert_(/TMDC_KV_PATH: http:\/\/denokv:4512/.test(text), "the frontend uses KV Connect");
  assertEquals(
    [...text.matchAll(/TMDC_WORKER_TOKEN: \$\{TMDC_WORKER_TOKEN:\?set it\}/g)].length,
    3,
  );
  assertEquals(
    [...text.matchAll(/TMDC_WORKER_ID: (worker-\d)/g)].map((m) => m[1]),
    ["worker-0", "worker-1"],
  );
  assertEquals([...text.matchAll(/device_ids: \["(\d)"\]/g)].map((m) => m[1]), ["0", "1"]);
});

Deno.test("deploy: the systemd worker unit is instantiated by GPU index", async () => {
  const unit = await read("deploy/tmdc-worker@.service");
  assert_(/CUDA_VISIBLE_DEVICES=%i/.test(unit));
  const readme = await read("deploy/README.md");
  assert_(!/tmdc-worker@gpu/.test(readme), "no instance named gpuN (CUDA_VISIBLE_DEVICES=gpu0)");
  assert_(/tmdc-worker@0/.test(readme));
});
