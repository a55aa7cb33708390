/**
 * Uploaded labelled image sets: checked against a bundle's image shape and class count and
 * decoded before anything is stored; evaluations then name them by id.
 */
import { z } from "zod";
import { bundleShape } from "../../lib/bundle.ts";
import { imageSize } from "../../lib/model.ts";
import type { Store } from "../../store/kv_store.ts";
import type { DatasetRecord } from "../../store/records.ts";
import { paged } from "./views.ts";
import type { ServiceDeps } from "../context.ts";
import { parseJson, ServiceError } from "../errors.ts";
import { decodeAll, type UploadedFile } from "../uploads.ts";
import { UUID } from "./views.ts";

/** The text fields of an upload (files are the images, in order). */
export const DATASET_FIELDS = ["labels", "name", "bundle"] as const;

export interface DatasetUpload {
  owner: string;
  files: readonly UploadedFile[];
  fields: Partial<Record<(typeof DATASET_FIELDS)[number], string>>;
}

/** A stored set as shown: its metadata, without the pixels or the owner. */
export type DatasetView = Omit<DatasetRecord, "owner" | "pixelsBlob">;

const Labels = z.array(z.number().int());
const Name = z.string().min(1).max(200);

export async function createDataset(deps: ServiceDeps, up: DatasetUpload): Promise<DatasetView> {
  const { store, registry, config } = deps;
  const limits = config.limits;
  const { files, fields } = up;
  const bundle = registry.get(fields.bundle ?? config.defaultBundle);
  const K = bundle.manifest.classes.length;
  if (files.length === 0) throw new ServiceError(400, "no-image", "no image in the request");
  if (files.length > limits.maxDatasetImages) {
    throw new ServiceError(
      413,
      "too-many-images",
      `${files.length} images; an uploaded set holds at most ${limits.maxDatasetImages}`,
    );
  }
  if (fields.labels === undefined) {
    throw new ServiceError(400, "invalid-request", "the 'labels' field is missing");
  }
  const labels = Labels.safeParse(parseJson(fields.labels, "labels"));
  if (!labels.success) {
    throw new ServiceError(400, "invalid-request", "labels must be a JSON array of integers");
  }
  if (labels.data.length !== files.length) {
    throw new ServiceError(
      422,
      "label-count-mismatch",
      `${labels.data.length} labels for ${files.length} images`,
    );
  }
  const bad = labels.data.findIndex((y) => y < 0 || y >= K);
  if (bad >= 0) {
    throw new ServiceError(
      422,
      "invalid-label",
      `label ${labels.data[bad]} of image ${bad} is not a class of ${bundle.id} (0..${K - 1})`,
      { index: bad },
    );
  }
  const name = Name.safeParse(fields.name ?? "uploaded");
  if (!name.success) {
    throw new ServiceError(400, "invalid-request", "name must be 1-200 characters");
  }
  const shape = bundleShape(bundle.manifest);
  const D = imageSize(shape);
  const pixels = new Float32Array(files.length * D);
  (await decodeAll(files, shape, limits.maxImagePixels, limits.maxImageAspect)).forEach((d, i) =>
    pixels.set(d.pixels, i * D)
  );
  const rec = await store.putDataset({
    name: name.data,
    owner: up.owner,
    n: files.length,
    shape,
    numClasses: K,
    labels: labels.data,
    files: files.map((f) => f.name),
  }, new Uint8Array(pixels.buffer));
  return view(rec);
}

export async function datasetView(store: Store, id: string): Promise<DatasetView> {
  const rec = UUID.test(id) ? await store.getDataset(id) : null;
  if (!rec) throw new ServiceError(404, "unknown-dataset", `no dataset '${id}'`);
  return view(rec);
}

/** A page of the uploaded sets, by id. */
export async function listDatasetPage(store: Store, limit: number, cursor?: string) {
  const page = await paged(() => store.listDatasetsPage(limit, cursor));
  return { datasets: page.datasets.map(view), next: page.next };
}

function view(rec: DatasetRecord): DatasetView {
  const { owner: _o, pixelsBlob: _p, ...rest } = rec;
  return rest;
}
