/**
 * The web page: drop images, see verdicts and job progress. Plain HTML + fetch, no build step.
 * The script is served apart (/page.js) so the Content-Security-Policy can forbid inline
 * scripts; everything a server response puts into the page goes through esc() or textContent.
 */
export const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TMDC — diffusion classifier</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}#drop{border:2px dashed #888;border-radius:8px;padding:2rem;text-align:center;cursor:pointer}
#drop.over{background:#eef}.card{display:flex;gap:1rem;border-bottom:1px solid #ddd;padding:.6rem 0;align-items:center}
.card img{width:84px;height:84px;image-rendering:pixelated;border:1px solid #ccc}
.bar{background:#dde;height:10px;width:160px}.bar>div{background:#46c;height:10px}
table{border-collapse:collapse;font-size:13px}td{padding:0 .5rem}.err{color:#b00}
input{width:24rem}
</style></head><body>
<h1>TMDC: classify with a diffusion model</h1>
<p>API key <input id="key" placeholder="tmdc_… (scripts/deno task cli keys create)"> · bundle <select id="bundle"></select></p>
<div id="drop">Drop PNG/JPEG images here, or click to choose</div><input id="file" type="file" accept="image/png,image/jpeg" multiple hidden>
<p id="status"></p><div id="out"></div>
<script src="/page.js" defer></script></body></html>`;

export const PAGE_JS = `const $ = (id) => document.getElementById(id);
$("key").value = localStorage.getItem("tmdc-key") || "";
$("key").onchange = () => localStorage.setItem("tmdc-key", $("key").value.trim());
fetch("/v1/models").then(r => r.json()).then(({models}) => {
  // the diffusion classifier first, then every baseline classifier (to compare verdicts)
  for (const m of [...models.filter(m => m.kind === "diffusion"), ...models.filter(m => m.kind !== "diffusion")]) {
    const o = document.createElement("option"); o.value = m.id; o.textContent = m.id + " (" + m.workersOnline + (m.workersOnline === 1 ? " worker)" : " workers)"); $("bundle").append(o);
  }
});
const drop = $("drop");
drop.onclick = () => $("file").click();
$("file").onchange = () => send([...$("file").files]);
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); send([...e.dataTransfer.files]); };
const headers = () => ({ authorization: "Bearer " + $("key").value.trim() });
async function send(files) {
  const fd = new FormData();
  files.forEach(f => fd.append("image", f));
  fd.append("options", JSON.stringify({ bundle: $("bundle").value || undefined }));
  $("status").textContent = "uploading " + files.length + " image(s)…";
  const r = await fetch("/v1/classify?wait=false", { method: "POST", body: fd, headers: headers() });
  const body = await r.json();
  if (!r.ok) { $("status").innerHTML = '<span class="err">' + esc(body.detail || body.title) + "</span>"; return; }
  poll(body.job.id, files);
}
async function poll(id, files) {
  const job = await (await fetch("/v1/jobs/" + id, { headers: headers() })).json();
  $("status").innerHTML = "job " + esc(id) + ": " + esc(job.status) + ' <span class="bar" style="display:inline-block"><div style="width:' + Math.round(Number(job.progress)*100) + '%"></div></span>';
  if (job.status === "done" || job.status === "failed") {
    const { verdicts } = await (await fetch("/v1/jobs/" + id + "/verdicts", { headers: headers() })).json();
    for (const v of verdicts) render(v, files[v.index]);
    for (const e of job.errors) $("out").insertAdjacentHTML("afterbegin", '<p class="err">image ' + Number(e.index) + ": " + esc(e.error) + "</p>");
  } else setTimeout(() => poll(id, files), 700);
}
function render(v, file) {
  const dc = v.stop !== "forward"; // a baseline classifier's verdict has no error estimates
  const rows = v.classNames.map((n, c) => [n, v.posterior[c], v.meanError[c], v.stdError[c], v.timestepsScored[c]])
    .sort((a, b) => b[1] - a[1]).slice(0, 5)
    .map(r => "<tr><td>" + esc(r[0]) + "</td><td>p=" + Number(r[1]).toFixed(3) + "</td>" + (dc ? "<td>err " + Number(r[2]).toFixed(5) + " ± " + Number(r[3]).toFixed(5) + "</td><td>" + Number(r[4]) + " t</td>" : "") + "</tr>").join("");
  const url = file ? URL.createObjectURL(file) : "";
  $("out").insertAdjacentHTML("afterbegin", '<div class="card"><img src="' + url + '"><div><b>' + esc(v.className) + "</b> · " + esc(v.bundle) + " · " + (dc ? Number(v.unetCalls) + " UNet calls · " : "") + Math.round(v.timings.computeMs) + " ms on " + esc(v.worker.id) + " (" + esc(v.worker.provider) + ")<table>" + rows + "</table></div></div>");
}
function esc(s) { return String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c])); }
`;
