/** `keys create`: an API key in the service's KV (config.kvPath, `TMDC_KV_PATH`). */
import { config } from "../config.ts";
import { Store } from "../store/kv_store.ts";
import { defineCommand } from "./command.ts";

export const keysCreate = defineCommand({
  summary: "create an API key in the service's KV (TMDC_KV_PATH); prints it once as JSON",
  options: {
    name: { type: "string", default: "default", help: "a name to tell keys apart" },
  },
  async run(values) {
    const store = await Store.open(config.kvPath);
    try {
      const { key, record } = await store.createApiKey(values.name);
      console.log(JSON.stringify({ key, id: record.id, name: record.name, kv: config.kvPath }));
    } finally {
      store.close();
    }
  },
});
