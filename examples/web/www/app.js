// The demo page: loads the model with a progress bar, takes an image (file picker, drag and
// drop, or a sample), shows the parallel and greedy captions with their times and zero-shot
// label probabilities as bars. All the work is done by cappa compiled to WebAssembly
// (pkg/cappa_web.js, built by examples/web/build.sh), on WebGPU or on the CPU.
//
// URL options: ?model=URL  ?backend=auto|gpu|cpu  ?labels=a,b,c  ?samples=URL
// The page's state is in <body data-state>: loading, ready, running, done or error.

import init, { Demo } from "./pkg/cappa_web.js";

const params = new URLSearchParams(location.search);
// The default model with q8 weights: a quarter of the f32 file's download (README, "Weight formats").
const MODEL_URL = params.get("model") ?? "models/shapes-q8.safetensors";
const SAMPLES_URL = params.get("samples") ?? "images/index.json";
const BACKEND = params.get("backend") ?? "auto";

const $ = (id) => document.getElementById(id);
let demo = null;
let busy = false;

function setState(state) {
  document.body.dataset.state = state;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setState("error");
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

const mb = (n) => (n / 1048576).toFixed(n < 1048576 ? 2 : 1) + " MB";
const ms = (t) => (t < 10 ? t.toFixed(1) : Math.round(t)) + " ms";

/** Fetches `url` as bytes, reporting progress on the page. */
async function fetchWithProgress(url) {
  const response = await fetch(url);
  if (!response.ok) {
    const hint = params.has("model")
      ? ""
      : " (build.sh copies examples/models/shapes-q8.safetensors here when it exists; or open the page with ?model=URL)";
    throw new Error(`cannot fetch the model at ${url}: HTTP ${response.status}${hint}`);
  }
  const total = Number(response.headers.get("content-length")) || 0;
  const bar = $("load-progress");
  if (!response.body || !total) {
    bar.removeAttribute("value");
    return new Uint8Array(await response.arrayBuffer());
  }
  const reader = response.body.getReader();
  const bytes = new Uint8Array(total);
  let got = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (got + value.length > total) throw new Error("the model is larger than announced");
    bytes.set(value, got);
    got += value.length;
    bar.value = got / total;
    $("load-text").textContent = `${mb(got)} of ${mb(total)}`;
  }
  return bytes.subarray(0, got);
}

/** Says which backend runs the model, and why it is the CPU when it is. */
async function showBackend() {
  $("backend").textContent = demo.backend;
  $("backend").dataset.webgpu = String(demo.webgpu);
  const note = $("note");
  if (demo.webgpu) {
    note.hidden = true;
    const info = (await navigator.gpu.requestAdapter())?.info;
    if (info) {
      const parts = [info.vendor, info.architecture, info.device, info.description].filter(Boolean);
      const software = demo.backend.includes("software fallback")
        ? " — a software adapter (the GPU emulated on the CPU): ?backend=cpu is usually faster"
        : "";
      $("adapter").textContent = `adapter: ${parts.join(" / ")}${software}`;
      $("adapter").hidden = parts.length === 0;
      // Browsers often give wgpu no adapter name; their own description is better than none.
      const name = info.description || [info.vendor, info.architecture].filter(Boolean).join(" ");
      if (name) $("backend").textContent = demo.backend.replace("unnamed adapter", name);
    }
    return;
  }
  let why;
  if (BACKEND === "cpu") {
    why = "The CPU backend was chosen with ?backend=cpu.";
  } else if (!("gpu" in navigator)) {
    why = "This browser does not offer WebGPU.";
  } else if ((demo.gpuError ?? "").includes("software")) {
    why = "This browser's WebGPU adapter is a software one (the GPU emulated on the CPU), " +
      "slower than the CPU backend; ?backend=gpu uses it anyway.";
    note.title = demo.gpuError;
  } else {
    why = "This browser has WebGPU but offered no usable adapter (it may be turned off, or the " +
      "machine has no supported GPU).";
    note.title = demo.gpuError ?? "";
  }
  note.textContent =
    `${why} cappa runs on its CPU backend compiled to WebAssembly instead: ` +
    "the same results, more slowly.";
  note.hidden = false;
}

function setBusy(on) {
  busy = on;
  $("file").disabled = on || !demo;
  $("classify").disabled = on || !demo;
  for (const b of $("samples").querySelectorAll("button")) b.disabled = on || !demo;
}

function labels() {
  return $("labels").value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

async function timed(work) {
  const t0 = performance.now();
  const value = await work();
  return [value, performance.now() - t0];
}

async function caption(mode) {
  const box = $(mode);
  box.querySelector(".text").textContent = "…";
  box.querySelector(".time").textContent = "";
  const [c, t] = await timed(() => demo.caption(mode));
  box.querySelector(".text").textContent = c.text === "" ? "(empty caption)" : c.text;
  box.dataset.text = c.text;
  box.dataset.tokens = JSON.stringify(Array.from(c.tokens));
  box.dataset.logProb = String(c.logProb);
  box.dataset.ms = String(t);
  box.querySelector(".time").textContent =
    `${ms(t)} · ${c.tokens.length} tokens · log p = ${c.logProb.toFixed(3)}` + (c.eos ? "" : " · no EOS");
}

async function classify() {
  const names = labels();
  const list = $("probs");
  list.replaceChildren();
  $("classify-time").textContent = "";
  if (names.length === 0) return;
  const [probs, t] = await timed(() => demo.classify(names));
  names.forEach((name, i) => {
    const p = probs[i];
    const li = document.createElement("li");
    li.dataset.label = name;
    li.dataset.prob = String(p);
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = name;
    label.title = name;
    const track = document.createElement("span");
    track.className = "track";
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.display = "block";
    bar.style.width = `${(p * 100).toFixed(2)}%`;
    track.append(bar);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = `${(p * 100).toFixed(1)}%`;
    li.append(label, track, value);
    list.append(li);
  });
  $("classify-time").dataset.ms = String(t);
  $("classify-time").textContent = `${names.length} labels in ${ms(t)}`;
}

/** Runs everything on new image bytes: preview, both captions, the labels. */
async function useImage(bytes, name) {
  if (!demo || busy) return;
  clearError();
  setBusy(true);
  setState("running");
  try {
    const [w, h] = demo.setImage(bytes);
    const old = $("preview").src;
    $("preview").src = URL.createObjectURL(new Blob([bytes]));
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    $("preview-box").hidden = false;
    $("preview-info").textContent = `${name} · ${w}×${h}, resized to ${demo.imageSize}×${demo.imageSize}`;
    $("preview-box").dataset.name = name;
    await caption("parallel");
    await caption("greedy");
    await classify();
    setState("done");
  } catch (e) {
    showError(`${name}: ${e?.message ?? e}`);
  } finally {
    setBusy(false);
  }
}

async function useFile(file) {
  if (file) await useImage(new Uint8Array(await file.arrayBuffer()), file.name);
}

async function loadSamples() {
  let index;
  try {
    const r = await fetch(SAMPLES_URL);
    if (!r.ok) return [];
    index = await r.json();
  } catch {
    return [];
  }
  const base = new URL(SAMPLES_URL, location.href);
  const box = $("samples");
  for (const file of index.images ?? []) {
    const url = new URL(file, base).href;
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.sample = file;
    b.title = file;
    b.disabled = true;
    const img = document.createElement("img");
    img.src = url;
    img.alt = file;
    b.append(img);
    b.addEventListener("click", async () => {
      const r = await fetch(url);
      if (!r.ok) return showError(`cannot fetch ${url}: HTTP ${r.status}`);
      await useImage(new Uint8Array(await r.arrayBuffer()), file);
    });
    box.append(b);
  }
  $("samples-box").hidden = box.childElementCount === 0;
  return index.labels ?? [];
}

function wireInputs() {
  $("file").addEventListener("change", () => useFile($("file").files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    useFile(e.dataTransfer?.files?.[0]);
  });
  $("labels-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!demo || busy) return;
    clearError();
    if (!$("preview-box").dataset.name) {
      showError("Choose an image first, then classify it.");
      return;
    }
    if (labels().length === 0) {
      showError("Type one or more labels, separated by commas (for example: a red circle, a blue square).");
      return;
    }
    setBusy(true);
    setState("running");
    try {
      await classify();
      setState("done");
    } catch (err) {
      showError(String(err?.message ?? err));
    } finally {
      setBusy(false);
    }
  });
}

async function main() {
  wireInputs();
  const sampleLabels = loadSamples();
  try {
    $("load-text").textContent = "loading the runtime…";
    const t0 = performance.now();
    await init();
    const bytes = await fetchWithProgress(MODEL_URL);
    $("load-text").textContent = `${mb(bytes.length)}; opening the backend…`;
    demo = await Demo.load(bytes, BACKEND);
    document.body.dataset.loadMs = String(performance.now() - t0);
    await showBackend();
    $("load-progress").value = 1;
    $("load-text").textContent = `${MODEL_URL.split("/").pop()} (${mb(bytes.length)}), ` +
      `${demo.imageSize}×${demo.imageSize} input, loaded in ${ms(Number(document.body.dataset.loadMs))}`;
  } catch (e) {
    $("backend").textContent = "none";
    showError(`Could not load the model: ${e?.message ?? e}`);
    return;
  }
  const given = params.get("labels");
  const defaults = await sampleLabels;
  $("labels").value = given !== null ? given : defaults.join(", ");
  setBusy(false);
  setState("ready");
}

main();
