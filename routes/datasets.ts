/**
 * POST /v1/datasets: upload a labelled image set (multipart: `image` files in order, a `labels`
 * field with one class index per image, optional `name` and `bundle`), checked against the
 * bundle's image shape and class count; evaluations then use `dataset: { name: "uploaded", id }`.
 * GET /v1/datasets/{id}: its metadata.
 */
import { Hono } from "hono";
import { z } from "zod";
import type { Config } from "../config.ts";
import type { Store } from "../store/kv_store.ts";
import type { AuthEnv } from "./auth.ts";
import { problem } from "./problem.ts";
import type { Registry } from "./registry.ts";
import { decodeAll, parseJson, readMultipart } from "./upload.ts";

export function datasetRoutes(deps: { store: Store; registry: Registry; config: Config }) {
  const { store, registry, config } = deps;
  const limits = config.limits;
  const app = new Hono<AuthEnv>();

  app.post("/", async (c) => {
    const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
    if (type !== "multipart/form-data") {
      throw problem(
        415,
        "send the set as multipart/form-data: 'image' files and a 'labels' field",
        {
          code: "unsupported-media-type",
        },
      );
    }
    const { files, fields } = await readMultipart(c, limits.maxImageBytes, [
      "labels",
      "name",
      "bundle",
    ]);
    const bundleRef = fields.bundle ?? config.defaultBundle;
    const bundle = registry.resolve(bundleRef);
    if (!bundle) throw problem(404, `unknown bundle '${bundleRef}'`, { code: "unknown-bundle" });
    const K = bundle.manifest.classes.length;
    if (files.length === 0) throw problem(400, "no image in the request", { code: "no-image" });
    if (files.length > limits.maxDatasetImages) {
      throw problem(
        413,
        `${files.length} images; an uploaded set holds at most ${limits.maxDatasetImages}`,
        { code: "too-many-images" },
      );
    }
    if (fields.labels === undefined) {
      throw problem(400, "the 'labels' field is missing", { code: "invalid-request" });
    }
    const labels = z.array(z.number().int()).safeParse(parseJson(fields.labels, "labels"));
    if (!labels.success) {
      throw problem(400, "labels must be a JSON array of integers", { code: "invalid-request" });
    }
    if (labels.data.length !== files.length) {
      throw problem(422, `${labels.data.length} labels for ${files.length} images`, {
        code: "label-count-mismatch",
      });
    }
    const bad = labels.data.findIndex((y) => y < 0 || y >= K);
    if (bad >= 0) {
      throw problem(
        422,
        `label ${labels.data[bad]} of image ${bad} is not a class of ${bundle.id} (0..${K - 1})`,
        { code: "invalid-label", index: bad },
      );
    }
    const name = z.string().min(1).max(200).safeParse(fields.name ?? "uploaded");
    if (!name.success) {
      throw problem(400, "name must be 1-200 characters", { code: "invalid-request" });
    }
    const shape = bundle.manifest.image;
    const D = shape.channels * shape.height * shape.width;
    const pixels = new Float32Array(files.length * D);
    (await decodeAll(files, shape, limits.maxImagePixels)).forEach((d, i) =>
      pixels.set(d.pixels, i * D)
    );
    const rec = await store.putDataset({
      name: name.data,
      owner: c.get("apiKey").id,
      n: files.length,
      shape: { channels: shape.channels, height: shape.height, width: shape.width },
      numClasses: K,
      labels: labels.data,
      files: files.map((f) => f.name),
    }, new Uint8Array(pixels.buffer));
    const { owner: _o, pixelsBlob: _p, ...view } = rec;
    return c.json(view, 201, { Location: `/v1/datasets/${rec.id}` });
  });

  app.get("/:id", async (c) => {
    const id = c.req.param("id");
    const rec = /^[0-9a-f-]{36}$/.test(id) ? await store.getDataset(id) : null;
    if (!rec) throw problem(404, `no dataset '${id}'`, { code: "unknown-dataset" });
    const { owner: _o, pixelsBlob: _p, ...view } = rec;
    return c.json(view);
  });
  return app;
}
