/** `classify FILE…`: the diffusion classifier in-process on image files, one JSON verdict a line. */
import { config } from "../config.ts";
import { classifyImages } from "../lib/diffusion_classifier.ts";
import { decodeImage, ImageError } from "../lib/image_decode.ts";
import { modelConversions } from "../lib/bundle.ts";
import { openDiffusion, settingsFor } from "../bench/common.ts";
import { UsageError } from "./errors.ts";
import { defineCommand } from "./command.ts";
import { userPath } from "./paths.ts";
import { DIFFUSION_BUNDLE, THREADS } from "./shared_options.ts";

export const classify = defineCommand({
  summary: "classify image files with the diffusion classifier in-process (one JSON line each)",
  positionals: "FILE…",
  options: {
    bundle: DIFFUSION_BUNDLE,
    settings: { type: "settings", help: "overrides of the bundle's default DC settings" },
    threads: THREADS,
  },
  async run(values, files) {
    const model = await openDiffusion(values.bundle, values.threads);
    const s = settingsFor(model, values.settings);
    for (const file of files) {
      let d;
      try {
        d = await decodeImage(
          await Deno.readFile(userPath(file)),
          model.imageShape,
          config.limits.maxImagePixels,
        );
      } catch (e) {
        // one bad file is the user's input, not a crash: name it
        if (e instanceof ImageError) throw new UsageError(`${file}: ${e.message}`);
        throw e;
      }
      const t0 = performance.now();
      const [v] = await classifyImages(model, d.pixels, 1, s);
      console.log(JSON.stringify({
        file,
        label: v.label,
        className: model.classNames[v.label],
        posterior: Array.from(v.posterior),
        meanError: Array.from(v.meanError),
        stdError: Array.from(v.stdError),
        unetCalls: v.unetCalls,
        settings: s,
        bundle: model.id,
        decoder: d.decoder,
        conversion: [...d.conversion, ...modelConversions(model.bundle.manifest)],
        ms: Math.round(performance.now() - t0),
      }));
    }
  },
});
