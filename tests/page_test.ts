/// <reference lib="dom" />
/**
 * The page's workbench flows in headless Chromium (puppeteer-core driving the system's
 * /usr/bin/chromium, or TMDC_CHROMIUM) against real frontend and worker processes on the tiny
 * bundles: classify an uploaded image, start and follow an evaluation (report and adversarial
 * examples), start and follow a fine-tune (checkpoint curve), browse jobs and adapters.
 * Screenshots go to TMDC_SCREENSHOTS when set.
 */
import { join } from "node:path";
import puppeteer from "puppeteer-core";
import { assert_, assertEquals } from "./assert.ts";
import { clusterTest } from "./cluster.ts";
import { fashionPngs } from "./service_helpers.ts";

const CHROMIUM = Deno.env.get("TMDC_CHROMIUM") ?? "/usr/bin/chromium";
const SHOTS = Deno.env.get("TMDC_SCREENSHOTS");

clusterTest(
  "page: classify, evaluate, fine-tune, browse jobs and adapters in headless Chromium",
  async (c, key) => {
    c.startWorker("w1");
    await c.waitForWorker("w1");
    const dir = await Deno.makeTempDir({ prefix: "tmdc-page-" });
    const [{ png }] = await fashionPngs(1);
    const file = join(dir, "shirt.png");
    await Deno.writeFile(file, png);
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--headless=new", "--disable-gpu"],
    });
    const errors: string[] = [];
    try {
      const page = await browser.newPage();
      page.on("pageerror", (e) => errors.push(String(e)));
      page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
      await page.setViewport({ width: 1100, height: 900 });
      await page.goto(c.url + "/", { waitUntil: "networkidle0" });
      await page.type("#key", key);
      await page.$eval("#key", (e) => e.dispatchEvent(new Event("change")));
      const shot = (name: string) =>
        SHOTS ? page.screenshot({ path: join(SHOTS, `page_${name}.png`) }) : null;

      // classify: the verdict card appears
      const input = await page.$("#file");
      await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(file);
      await page.waitForSelector(".card b", { timeout: 60_000 });
      const label = await page.$eval(".card b", (e) => e.textContent);
      assert_(label && label.length > 0, "a class name is shown");
      await shot("classify");

      // evaluate: follow it to its report and adversarial examples
      await page.click('nav button[data-tab="evaluate"]');
      await page.$eval('#evalForm input[name="n"]', (e) => ((e as HTMLInputElement).value = "2"));
      await page.$eval(
        '#evalForm input[name="steps"]',
        (e) => ((e as HTMLInputElement).value = "2"),
      );
      await page.$eval(
        '#evalForm input[name="surrogate"]',
        (e) => ((e as HTMLInputElement).value = "resnet8-fmnist"),
      );
      await page.click('#evalForm button[type="submit"]');
      await page.waitForSelector("#evalStatus a[data-open]", { timeout: 30_000 });
      await page.click("#evalStatus a[data-open]");
      await page.waitForFunction(
        () => document.querySelectorAll("#advImages img").length === 2,
        { timeout: 120_000 },
      );
      const robust = await page.$eval("#report td.robust", (e) => e.textContent ?? "");
      assert_(/^\d+\.\d%/.test(robust), `robust accuracy shown: ${robust}`);
      await shot("evaluation");

      // fine-tune: its checkpoint curve once done
      await page.click('nav button[data-tab="finetune"]');
      await page.$eval('#ftForm input[name="steps"]', (e) => ((e as HTMLInputElement).value = "4"));
      await page.$eval('#ftForm input[name="val"]', (e) => ((e as HTMLInputElement).value = "2"));
      await page.$eval(
        '#ftForm input[name="surrogate"]',
        (e) => ((e as HTMLInputElement).value = "resnet8-fmnist"),
      );
      await page.click('#ftForm button[type="submit"]');
      await page.waitForSelector("#ftStatus a[data-open]", { timeout: 30_000 });
      await page.click("#ftStatus a[data-open]");
      await page.waitForFunction(
        () => /^fine-tune .* done/.test(document.querySelector("#jobDetail h3")?.textContent ?? ""),
        { timeout: 180_000 },
      );
      const points = await page.$eval("#curve polyline", (e) => e.getAttribute("points") ?? "");
      assertEquals(points.trim().split(" ").length, 2, `two checkpoints on the curve: ${points}`);
      await shot("finetune");

      // browse: the jobs of each kind and the adapters
      await page.select("#jobKind", "classify");
      await page.waitForFunction(() => document.querySelectorAll("#jobsTable tr").length === 2);
      await page.click('nav button[data-tab="adapters"]');
      await page.waitForFunction(() => document.querySelectorAll("#adaptersTable tr").length === 3);
      await shot("adapters");
      assertEquals(errors, [], "no script errors (a CSP violation would show here)");
    } finally {
      await browser.close();
    }
  },
  { env: { TMDC_LEASE_MS: "30000" } },
);
