/** `keys create|list|revoke`: API keys in the service's KV (config.kvPath, `TMDC_KV_PATH`). */
import { config } from "../config.ts";
import { Store } from "../store/kv_store.ts";
import { type Role, ROLES } from "../store/records.ts";
import { defineCommand } from "./command.ts";
import { UsageError } from "./errors.ts";

async function withStore<T>(fn: (s: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(config.kvPath);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

export const keysCreate = defineCommand({
  summary: "create an API key in the service's KV (TMDC_KV_PATH); prints it once as JSON",
  description: "The first key of a deployment is an admin's unless --role says otherwise;\n" +
    "later ones are members'. Admins manage keys (also over HTTP: /v1/keys).",
  options: {
    name: { type: "string", default: "default", help: "a name to tell keys apart" },
    role: { type: "enum", values: [...ROLES], help: "admin, member or viewer" },
  },
  run: (values) =>
    withStore(async (store) => {
      const role = (values.role ??
        ((await store.countApiKeys()) === 0 ? "admin" : "member")) as Role;
      const { key, record } = await store.createApiKey(values.name, role);
      console.log(
        JSON.stringify({ key, id: record.id, name: record.name, role, kv: config.kvPath }),
      );
    }),
});

export const keysList = defineCommand({
  summary: "list the deployment's API keys (ids, names, roles, revocations; never the secrets)",
  options: {},
  run: () =>
    withStore(async (store) => {
      for (const r of await store.listApiKeys()) {
        console.log(JSON.stringify({ ...r, role: r.role ?? "admin" }));
      }
    }),
});

export const keysRevoke = defineCommand({
  summary: "revoke an API key by id: its next request gets 401",
  options: { id: { type: "string", arg: "ID", required: true, help: "the key's id" } },
  run: (values) =>
    withStore(async (store) => {
      const rec = await store.revokeApiKey(values.id, "cli");
      if (!rec) throw new UsageError(`no key with id ${values.id} in ${config.kvPath}`);
      console.log(JSON.stringify(rec));
    }),
});
