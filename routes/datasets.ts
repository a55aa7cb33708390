/**
 * POST /v1/datasets: upload a labelled image set (multipart: `image` files in order, a `labels`
 * field with one class index per image, optional `name` and `bundle`); evaluations then use
 * `dataset: { name: "uploaded", id }`. GET /v1/datasets/{id}: its metadata.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { ServiceError } from "../service/errors.ts";
import {
  createDataset,
  DATASET_FIELDS,
  datasetView,
  listDatasetPage,
} from "../service/jobs/datasets.ts";
import { type AppDeps, bodyLimits } from "./deps.ts";
import { apiRouter, limitBody } from "./http.ts";
import { readMultipart } from "./multipart.ts";
import { problemResponses } from "./problem.ts";
import { Dataset, IdParam, pageOf, PageQuery } from "./schemas.ts";

const security = [{ bearer: [] }];
const tags = ["datasets"];

const post = (maxBytes: number) =>
  createRoute({
    method: "post",
    path: "/",
    operationId: "uploadDataset",
    summary: "Upload a labelled image set for evaluations",
    description:
      "Every image is decoded to the bundle's shape and every label checked against its classes " +
      "before anything is stored. Answers 201 with Location: /v1/datasets/{id}.",
    tags,
    security,
    middleware: [limitBody(maxBytes)] as const,
    request: {
      body: {
        required: true,
        content: {
          "multipart/form-data": {
            schema: {
              type: "object",
              properties: {
                image: {
                  type: "array",
                  items: { type: "string", contentMediaType: "application/octet-stream" },
                  description: "PNG or JPEG images, in order",
                },
                labels: {
                  type: "array",
                  items: { type: "integer", minimum: 0 },
                  description: "one class index per image",
                },
                name: { type: "string", minLength: 1, maxLength: 200 },
                bundle: { type: "string", description: "whose shape and classes the set must fit" },
              },
              required: ["image", "labels"],
            },
            encoding: { labels: { contentType: "application/json" } },
          },
        },
      },
    },
    responses: {
      201: {
        description: "the stored set",
        headers: z.object({ Location: z.string().describe("/v1/datasets/{id}") }),
        content: { "application/json": { schema: Dataset } },
      },
      ...problemResponses(400, 401, 404, 413, 415, 422),
    },
  });

const get = createRoute({
  method: "get",
  path: "/{id}",
  operationId: "getDataset",
  summary: "An uploaded set's metadata",
  tags,
  security,
  request: { params: IdParam },
  responses: {
    200: { description: "the set", content: { "application/json": { schema: Dataset } } },
    ...problemResponses(401, 404),
  },
});

const list = createRoute({
  method: "get",
  path: "/",
  operationId: "listDatasets",
  summary: "The team's uploaded labelled sets, by pages",
  tags,
  security,
  request: { query: PageQuery },
  responses: {
    200: {
      description: "a page of sets",
      content: {
        "application/json": {
          schema: pageOf("datasets", Dataset),
        },
      },
    },
    ...problemResponses(400, 401),
  },
});

export function datasetRoutes(deps: AppDeps) {
  const limits = deps.config.limits;
  return apiRouter()
    .openapi(list, async (c) => {
      const q = c.req.valid("query");
      return c.json(await listDatasetPage(deps.store, q.limit, q.cursor), 200);
    })
    .openapi(post(bodyLimits(limits).dataset), async (c) => {
      const type = (c.req.header("content-type") ?? "").split(";")[0].trim().toLowerCase();
      if (type !== "multipart/form-data") {
        throw new ServiceError(
          415,
          "unsupported-media-type",
          "send the set as multipart/form-data: 'image' files and a 'labels' field",
        );
      }
      const { files, fields } = await readMultipart(c.req.raw, {
        maxFiles: limits.maxDatasetImages,
        maxFileBytes: limits.maxImageBytes,
        fields: DATASET_FIELDS,
        maxFieldBytes: 1024 * 1024,
      });
      const view = await createDataset(deps, { owner: c.get("apiKey").id, files, fields });
      return c.json(view, 201, { Location: `/v1/datasets/${view.id}` });
    })
    .openapi(get, async (c) => c.json(await datasetView(deps.store, c.req.valid("param").id), 200));
}
