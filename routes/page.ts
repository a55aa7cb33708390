/**
 * The web page, a small workbench: classify dropped images; start and follow evaluations and
 * fine-tunes; browse the team's jobs (an evaluation's report and adversarial examples, a
 * fine-tune's checkpoint curve) and adapters. Plain HTML + fetch, no build step. The script is
 * served apart (/page.js) so the Content-Security-Policy can forbid inline scripts; everything
 * a server response puts into the page goes through esc() or textContent.
 */
export const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>TMDC — diffusion classifier</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">
<style>
body{font:15px/1.45 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}#drop{border:2px dashed #888;border-radius:8px;padding:2rem;text-align:center;cursor:pointer}
#drop.over{background:#eef}.card{display:flex;gap:1rem;border-bottom:1px solid #ddd;padding:.6rem 0;align-items:center}
.card img,.adv img{width:84px;height:84px;image-rendering:pixelated;border:1px solid #ccc}
.bar{background:#dde;height:10px;width:160px}.bar>div{background:#46c;height:10px}
table{border-collapse:collapse;font-size:13px}td,th{padding:.1rem .5rem;text-align:left}.err{color:#b00}
#key{width:24rem}nav button{margin-right:.3rem}nav button.on{font-weight:bold}
form label{margin-right:.8rem}form input{width:5rem}.adv{display:flex;flex-wrap:wrap;gap:.4rem}
</style></head><body>
<h1>TMDC: classify with a diffusion model, attack it, fine-tune it</h1>
<p>API key <input id="key" placeholder="tmdc_… (scripts/deno task cli keys create)"> · bundle <select id="bundle"></select></p>
<nav><button data-tab="classify" class="on">Classify</button><button data-tab="evaluate">Evaluate</button><button data-tab="finetune">Fine-tune</button><button data-tab="jobs">Jobs</button><button data-tab="adapters">Adapters</button></nav>
<section id="tab-classify">
<div id="drop">Drop PNG/JPEG images here, or click to choose</div><input id="file" type="file" accept="image/png,image/jpeg" multiple hidden>
<p id="status"></p><div id="out"></div>
</section>
<section id="tab-evaluate" hidden>
<form id="evalForm"><p>Attack made on the surrogate <b>resnet14-fmnist</b> (transfer), scored on the bundle above.</p>
<label>attack <select name="attack"><option>fgsm</option><option selected>pgd</option><option>apgd-ce</option></select></label>
<label>norm <select name="norm"><option>linf</option><option>l2</option></select></label>
<label>ε <input name="eps" value="0.05"></label><label>steps <input name="steps" value="10"></label>
<label>images <input name="n" value="8"></label><label>surrogate <input name="surrogate" value="resnet14-fmnist"></label>
<button type="submit">Start evaluation</button></form>
<p id="evalStatus"></p>
</section>
<section id="tab-finetune" hidden>
<form id="ftForm"><p>Truth Maximization of the bundle above: LoRA on its attention, training examples transferred from the surrogate.</p>
<label>steps <input name="steps" value="20"></label><label>lr <input name="lr" value="0.001"></label>
<label>batch <input name="batch" value="4"></label><label>validation images <input name="val" value="8"></label>
<label>surrogate <input name="surrogate" value="resnet14-fmnist"></label>
<button type="submit">Start fine-tune</button></form>
<p id="ftStatus"></p>
</section>
<section id="tab-jobs" hidden>
<p><label>kind <select id="jobKind"><option value="classify">classify</option><option value="evaluate">evaluate</option><option value="finetune">finetune</option></select></label> <button id="jobsReload">reload</button></p>
<table id="jobsTable"></table><div id="jobDetail"></div>
</section>
<section id="tab-adapters" hidden><p><button id="adaptersReload">reload</button></p><table id="adaptersTable"></table></section>
<script src="/page.js" defer></script></body></html>`;

export const PAGE_JS = `
const $ = (id) => document.getElementById(id);
function esc(s) { return String(s).replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c])); }
const pct = (v) => v === null || v === undefined ? "–" : (100 * Number(v)).toFixed(1) + "%";
$("key").value = localStorage.getItem("tmdc-key") || "";
$("key").onchange = () => localStorage.setItem("tmdc-key", $("key").value.trim());
const headers = (extra) => ({ authorization: "Bearer " + $("key").value.trim(), ...(extra || {}) });
async function api(path, init) {
  const r = await fetch(path, { ...(init || {}), headers: headers(init && init.headers) });
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : null;
  if (!r.ok) throw new Error((body && (body.detail || body.title)) || r.status);
  return body;
}
const fail = (el, e) => { el.innerHTML = '<span class="err">' + esc(e.message || e) + "</span>"; };
const bar = (p) => '<span class="bar" style="display:inline-block"><div style="width:' + Math.round(Number(p) * 100) + '%"></div></span>';

// tabs
for (const b of document.querySelectorAll("nav button")) {
  b.onclick = () => {
    for (const o of document.querySelectorAll("nav button")) o.classList.toggle("on", o === b);
    for (const s of document.querySelectorAll("section")) s.hidden = s.id !== "tab-" + b.dataset.tab;
    if (b.dataset.tab === "jobs") loadJobs();
    if (b.dataset.tab === "adapters") loadAdapters();
  };
}

fetch("/v1/models").then(r => r.json()).then(({models}) => {
  // the diffusion classifier first, then every baseline classifier (to compare verdicts)
  for (const m of [...models.filter(m => m.kind !== "classifier"), ...models.filter(m => m.kind === "classifier")]) {
    const o = document.createElement("option"); o.value = m.id; o.textContent = m.id + " (" + m.workersOnline + (m.workersOnline === 1 ? " worker)" : " workers)"); $("bundle").append(o);
  }
});

// ---- classify ----
const drop = $("drop");
drop.onclick = () => $("file").click();
$("file").onchange = () => send([...$("file").files]);
drop.ondragover = (e) => { e.preventDefault(); drop.classList.add("over"); };
drop.ondragleave = () => drop.classList.remove("over");
drop.ondrop = (e) => { e.preventDefault(); drop.classList.remove("over"); send([...e.dataTransfer.files]); };
async function send(files) {
  const fd = new FormData();
  files.forEach(f => fd.append("image", f));
  fd.append("options", JSON.stringify({ bundle: $("bundle").value || undefined }));
  $("status").textContent = "uploading " + files.length + " image(s)…";
  try {
    const body = await api("/v1/classify?wait=false", { method: "POST", body: fd });
    poll(body.job.id, files);
  } catch (e) { fail($("status"), e); }
}
async function poll(id, files) {
  const job = await api("/v1/jobs/" + id);
  $("status").innerHTML = "job " + esc(id) + ": " + esc(job.status) + " " + bar(job.progress);
  if (job.status === "done" || job.status === "failed" || job.status === "cancelled") {
    const { verdicts } = await api("/v1/jobs/" + id + "/verdicts");
    for (const v of verdicts) render(v, files[v.index]);
    for (const e of job.errors) $("out").insertAdjacentHTML("afterbegin", '<p class="err">image ' + Number(e.index) + ": " + esc(e.error) + "</p>");
  } else setTimeout(() => poll(id, files).catch((e) => fail($("status"), e)), 700);
}
function render(v, file) {
  const dc = v.stop !== "forward"; // a baseline classifier's verdict has no error estimates
  const rows = v.classNames.map((n, c) => [n, v.posterior[c], v.meanError[c], v.stdError[c], v.timestepsScored[c]])
    .sort((a, b) => b[1] - a[1]).slice(0, 5)
    .map(r => "<tr><td>" + esc(r[0]) + "</td><td>p=" + Number(r[1]).toFixed(3) + "</td>" + (dc ? "<td>err " + Number(r[2]).toFixed(5) + " ± " + Number(r[3]).toFixed(5) + "</td><td>" + Number(r[4]) + " t</td>" : "") + "</tr>").join("");
  const url = file ? URL.createObjectURL(file) : "";
  $("out").insertAdjacentHTML("afterbegin", '<div class="card"><img src="' + url + '"><div><b>' + esc(v.className) + "</b> · " + esc(v.bundle) + " · " + (dc ? Number(v.unetCalls) + " UNet calls · " : "") + Math.round(v.timings.computeMs) + " ms on " + esc(v.worker.id) + " (" + esc(v.worker.provider) + ")<table>" + rows + "</table></div></div>");
}

// ---- start an evaluation or a fine-tune, then follow it in Jobs ----
$("evalForm").onsubmit = async (e) => {
  e.preventDefault();
  const f = Object.fromEntries(new FormData(e.target));
  const attack = { attack: f.attack, norm: f.norm, eps: Number(f.eps), ...(f.attack === "fgsm" ? {} : { steps: Number(f.steps) }) };
  try {
    const { job } = await api("/v1/evaluations", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({
      target: { bundle: $("bundle").value || undefined }, source: { kind: "surrogate", bundle: f.surrogate }, attack,
      dataset: { name: "fashion-mnist-test", n: Number(f.n), seed: 0 } }) });
    $("evalStatus").textContent = "evaluation " + job.id + " started";
    follow(job.id, "evaluate", $("evalStatus"));
  } catch (err) { fail($("evalStatus"), err); }
};
$("ftForm").onsubmit = async (e) => {
  e.preventDefault();
  const f = Object.fromEntries(new FormData(e.target));
  const steps = Number(f.steps);
  try {
    const { job } = await api("/v1/finetunes", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({
      bundle: $("bundle").value || undefined, hyper: { lr: Number(f.lr), batchSize: Number(f.batch), steps, warmupSteps: 0 },
      attack: { attack: "pgd", norm: "linf", eps: 0.1, steps: 5, seed: 0 }, source: { kind: "surrogate", bundle: f.surrogate },
      checkpoints: [...new Set([Math.max(1, Math.round(steps / 2)), steps])], validation: { n: Number(f.val), seed: 0 } }) });
    $("ftStatus").textContent = "fine-tune " + job.id + " started";
    follow(job.id, "finetune", $("ftStatus"));
  } catch (err) { fail($("ftStatus"), err); }
};
async function follow(id, kind, el) {
  const job = await api("/v1/jobs/" + id);
  el.innerHTML = esc(kind) + " " + esc(id) + ": " + esc(job.status) + " " + bar(job.progress) + ' <a href="#" data-open="' + esc(id) + '" data-kind="' + esc(kind) + '">open</a>';
  if (job.status === "queued" || job.status === "running") setTimeout(() => follow(id, kind, el).catch((e) => fail(el, e)), 1000);
}
document.addEventListener("click", (e) => {
  const a = e.target.closest("[data-open]");
  if (!a) return;
  e.preventDefault();
  openJob(a.dataset.open, a.dataset.kind);
});

// ---- browse ----
$("jobsReload").onclick = () => loadJobs();
$("jobKind").onchange = () => loadJobs();
async function loadJobs() {
  try {
    const { jobs } = await api("/v1/jobs?kind=" + encodeURIComponent($("jobKind").value) + "&limit=50");
    $("jobsTable").innerHTML = "<tr><th>job</th><th>status</th><th>progress</th><th>created</th><th></th></tr>" + jobs.map(j =>
      "<tr><td>" + esc(j.id) + "</td><td>" + esc(j.status) + "</td><td>" + bar(j.progress) + "</td><td>" + esc(j.createdAt) +
      '</td><td><a href="#" data-open="' + esc(j.id) + '" data-kind="' + esc(j.kind) + '">open</a></td></tr>').join("");
  } catch (e) { fail($("jobDetail"), e); }
}
async function openJob(id, kind) {
  for (const b of document.querySelectorAll("nav button")) if (b.dataset.tab === "jobs") b.click();
  const el = $("jobDetail");
  try {
    if (kind === "evaluate") return showEvaluation(id, el);
    if (kind === "finetune") return showFinetune(id, el);
    const job = await api("/v1/jobs/" + id);
    const { verdicts } = await api("/v1/jobs/" + id + "/verdicts");
    el.innerHTML = "<h3>classify " + esc(id) + " · " + esc(job.status) + "</h3><table>" + verdicts.map(v =>
      "<tr><td>" + esc(v.input.name) + "</td><td><b>" + esc(v.className) + "</b></td><td>" + Number(v.unetCalls) + " UNet calls</td></tr>").join("") + "</table>";
  } catch (e) { fail(el, e); }
}
async function showEvaluation(id, el) {
  const { job, report: r, images } = await api("/v1/evaluations/" + id);
  el.innerHTML = "<h3>evaluation " + esc(id) + " · " + esc(job.status) + " " + bar(job.progress) + "</h3>" +
    '<table id="report"><tr><th>mode</th><td>' + esc(r.mode) + "</td></tr><tr><th>attack</th><td>" + esc(r.attack.attack) + " " + esc(r.attack.norm) + " ε=" + esc(r.attack.eps) + "</td></tr>" +
    "<tr><th>images</th><td>" + Number(r.n) + " of " + Number(r.of) + "</td></tr><tr><th>clean accuracy</th><td>" + pct(r.clean_accuracy) + "</td></tr>" +
    '<tr><th>robust accuracy</th><td class="robust">' + pct(r.robust_accuracy) + " [" + pct(r.ci95[0]) + ", " + pct(r.ci95[1]) + "]</td></tr>" +
    (r.sanity ? r.sanity.map(s => "<tr><th>check</th><td>" + esc(s.name) + ": " + esc(s.status) + "</td></tr>").join("") : "") + "</table>" +
    '<p>adversarial examples</p><div class="adv" id="advImages"></div>';
  if (job.status === "queued" || job.status === "running") { setTimeout(() => showEvaluation(id, el).catch((e) => fail(el, e)), 1500); return; }
  if (job.status !== "done") return;
  for (const i of images.slice(0, 12)) {
    const res = await fetch("/v1/evaluations/" + id + "/adversarial/" + Number(i) + ".png", { headers: headers() });
    if (!res.ok) continue;
    const img = document.createElement("img");
    img.src = URL.createObjectURL(await res.blob());
    img.title = "test image " + Number(i);
    $("advImages").append(img);
  }
}
async function showFinetune(id, el) {
  const f = await api("/v1/finetunes/" + id);
  const pts = f.checkpoints.map(c => [c.step, c.validation.robust_accuracy, c.validation.clean_accuracy]);
  const maxStep = Math.max(1, ...pts.map(p => p[0]));
  const xy = (p, k) => (20 + 360 * p[0] / maxStep).toFixed(1) + "," + (180 - 160 * p[k]).toFixed(1);
  const svg = '<svg id="curve" width="400" height="200" viewBox="0 0 400 200" role="img" aria-label="validation accuracy by step">' +
    '<line x1="20" y1="180" x2="390" y2="180" stroke="#888"/><line x1="20" y1="20" x2="20" y2="180" stroke="#888"/>' +
    '<polyline fill="none" stroke="#46c" stroke-width="2" points="' + pts.map(p => xy(p, 1)).join(" ") + '"/>' +
    '<polyline fill="none" stroke="#999" stroke-dasharray="4" points="' + pts.map(p => xy(p, 2)).join(" ") + '"/>' +
    '<text x="24" y="16" font-size="11">validation: robust (blue), clean (grey)</text></svg>';
  el.innerHTML = "<h3>fine-tune " + esc(id) + " · " + esc(f.job.status) + " · step " + Number(f.step) + "</h3>" + svg +
    "<table><tr><th>step</th><th>adapter</th><th>loss</th><th>clean</th><th>robust</th></tr>" + f.checkpoints.map(c =>
      "<tr><td>" + Number(c.step) + "</td><td>" + esc(c.adapter) + (c.best ? " (best)" : "") + "</td><td>" + Number(c.loss).toFixed(4) + "</td><td>" +
      pct(c.validation.clean_accuracy) + "</td><td>" + pct(c.validation.robust_accuracy) + "</td></tr>").join("") + "</table>";
  if (f.job.status === "queued" || f.job.status === "running") setTimeout(() => showFinetune(id, el).catch((e) => fail(el, e)), 1500);
}
$("adaptersReload").onclick = () => loadAdapters();
async function loadAdapters() {
  try {
    const { adapters } = await api("/v1/adapters?limit=100");
    $("adaptersTable").innerHTML = "<tr><th>adapter</th><th>bundle</th><th>step</th><th>validation robust</th></tr>" + adapters.map(a =>
      "<tr><td>" + esc(a.id) + "</td><td>" + esc(a.bundle) + "</td><td>" + Number(a.step) + "</td><td>" + pct(a.validation.robust_accuracy) + "</td></tr>").join("");
  } catch (e) { fail($("adaptersTable"), e); }
}
`;
