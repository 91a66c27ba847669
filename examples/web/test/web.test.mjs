// The browser demo, end to end: the page is built (examples/web/build.sh), served on 127.0.0.1
// and driven in Debian's headless Chromium through playwright-core. For each image it is given
// (a sample, the file picker, drag and drop), the page's parallel and greedy captions and its
// zero-shot label probabilities must equal what the native `cappa` CLI prints (--json, CPU
// backend) for the same image file and model.
//
// Three browser runs:
//  1. WebGPU: Chromium with --enable-unsafe-webgpu (a SwiftShader adapter on machines without a
//     GPU) and ?backend=gpu. The page must report WebGPU; a silent fall back to the CPU fails the
//     test. Then ?backend=auto, the runtime's one device policy: a hardware adapter is taken, a
//     software one (SwiftShader) passed over for the CPU backend, with a note saying so.
//  2. No WebGPU: Chromium without that flag offers no adapter; the page must fall back to its CPU
//     backend, say so in a note, and still give the CLI's answers; the same with no WebGPU API at
//     all (navigator.gpu removed).
//  3. ?backend=cpu in the WebGPU browser: the CPU backend forced by the URL.
// and a fourth that feeds the page bad input (a file that is not an image, a missing model, a
// corrupt model) and checks that each is shown as a clear message.
// Each run saves a screenshot after captioning in the output folder ($CAPPA_WEB_TEST_OUT, else
// web-test/ in $CARGO_TARGET_DIR or target/), with results.json (backend, adapter, times).
//
// The model and images under test:
//  * CAPPA_WEB_MODEL=FILE (a single-file model with its tokenizer) and CAPPA_WEB_IMAGES=DIR or
//    FILE,FILE,... (and optionally CAPPA_WEB_LABELS=a,b,c; default: examples/web/labels.txt);
//  * else the page's default model, examples/models/shapes-q8.safetensors, with examples/images/*.png;
//  * else (until the default model is committed) the reference fixture tests/fixtures/cappa-tiny
//    with a word vocabulary, and generated images (web-test-assets writes them).
//
// Other environment: CHROMIUM (default /usr/lib/chromium/chromium); CAPPA_WEB_SKIP_BUILD=1
// serves an existing build in $OUT/site as it is.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serve } from "../server.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const TARGET = resolve(ROOT, process.env.CARGO_TARGET_DIR ?? "target");
const OUT = resolve(process.env.CAPPA_WEB_TEST_OUT ?? join(TARGET, "web-test"));
const SITE = join(OUT, "site");
const ASSETS = join(OUT, "assets");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/lib/chromium/chromium";

// The model the page loads by default (q8 weights; the native CLI reads the same file).
const DEFAULT_MODEL = join(ROOT, "examples/models/shapes-q8.safetensors");
const DEFAULT_IMAGES = join(ROOT, "examples/images");
const FIXTURE = "tests/fixtures/cappa-tiny";
const IMAGE_TYPES = /\.(png|jpe?g|webp|ppm)$/i;

/** Probabilities of two f32 implementations (CPU in wasm or WebGPU, native CPU) agree this well. */
const PROB_TOL = 1e-4;
/** Caption log-probabilities: sums of up to max_len token log-probabilities. */
const LOG_PROB_TOL = 1e-3;
/** Model load and the first captions (pipeline compiles on SwiftShader) stay well under this. */
const PAGE_TIMEOUT = 180_000;

// Flags that keep Chromium off the network (PLATFORM.md §6); --no-sandbox comes from
// chromiumSandbox: false (needed as root).
const QUIET = [
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-default-apps",
  "--disable-features=Translate,OptimizationHints,MediaRouter",
];

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, {
    cwd: ROOT,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 << 20,
    ...opts,
  });
}

/** Paths of the native programs the test runs, built once in before(). */
const exe = {};

/**
 * Builds the `cappa` CLI and web-test-assets with the test profile (what `cargo test --workspace`
 * has already built, in CI) and notes where their executables are.
 */
function buildNative() {
  const out = run("cargo", [
    "build", "--profile", "test", "--message-format=json-render-diagnostics",
    "-p", "cappa-cli", "--bin", "cappa", "-p", "cappa-web", "--bin", "web-test-assets",
  ]);
  for (const line of out.split("\n")) {
    if (!line.startsWith("{")) continue;
    const m = JSON.parse(line);
    if (m.reason === "compiler-artifact" && m.executable) exe[m.target.name] = m.executable;
  }
  assert.ok(exe.cappa && exe["web-test-assets"], `built: ${JSON.stringify(exe)}`);
}

function cli(args) {
  return JSON.parse(run(exe.cappa, [...args, "--device", "cpu"]));
}

let server;
let baseUrl;
let index;
const modelFile = join(ASSETS, "model.safetensors");
const results = { runs: {} };
/** The CLI's answers per image file name, filled lazily. */
const expected = new Map();

function cliAnswers(name, labels) {
  const key = `${name}|${labels.join(",")}`;
  if (!expected.has(key)) {
    const image = join(ASSETS, name);
    const caption = (mode) =>
      cli(["caption", image, "--model", modelFile, "--mode", mode, "--json"])[0];
    const classified = cli(["classify", image, "--model", modelFile, "--labels", labels.join(","), "--json"]);
    const probs = new Map(classified.labels.map((r) => [r.label, r.probability]));
    expected.set(key, { parallel: caption("parallel"), greedy: caption("greedy"), probs });
  }
  return expected.get(key);
}

/** Image files: a folder's images (sorted) or a comma-separated list of files. */
function imageFiles(spec) {
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    return readdirSync(spec)
      .filter((f) => IMAGE_TYPES.test(f))
      .sort()
      .map((f) => join(spec, f));
  }
  return spec.split(",").filter(Boolean).map((f) => resolve(ROOT, f));
}

/** Copies a given model and images into ASSETS with the page's index.json. Returns what it used. */
function stageAssets(model, images, labels) {
  assert.ok(existsSync(model), `no model at ${model}`);
  assert.ok(images.length > 0, "no images to test with");
  mkdirSync(ASSETS, { recursive: true });
  copyFileSync(model, modelFile);
  for (const f of images) copyFileSync(f, join(ASSETS, basename(f)));
  const index = { images: images.map((f) => basename(f)), labels };
  writeFileSync(join(ASSETS, "index.json"), JSON.stringify(index) + "\n");
  return { model, images };
}

function labelsFromFile() {
  return readFileSync(join(ROOT, "examples/web/labels.txt"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

before(() => {
  mkdirSync(OUT, { recursive: true });
  if (process.env.CAPPA_WEB_SKIP_BUILD !== "1") {
    run(join(ROOT, "examples/web/build.sh"), [], { env: { ...process.env, CAPPA_WEB_OUT: SITE }, stdio: "inherit" });
  }
  buildNative();
  const labels = process.env.CAPPA_WEB_LABELS?.split(",").map((l) => l.trim()).filter(Boolean) ?? labelsFromFile();
  if (process.env.CAPPA_WEB_MODEL) {
    const images = imageFiles(process.env.CAPPA_WEB_IMAGES ?? DEFAULT_IMAGES);
    results.model = stageAssets(resolve(ROOT, process.env.CAPPA_WEB_MODEL), images, labels);
  } else if (existsSync(DEFAULT_MODEL)) {
    let images = existsSync(DEFAULT_IMAGES) ? imageFiles(process.env.CAPPA_WEB_IMAGES ?? DEFAULT_IMAGES) : [];
    if (images.length === 0) {
      // No sample images committed yet: shapes scenes from web-test-assets (its model unused).
      const scenes = join(OUT, "scenes");
      run(exe["web-test-assets"], ["--shapes-size", scenes]);
      images = imageFiles(scenes);
    }
    results.model = stageAssets(DEFAULT_MODEL, images, labels);
  } else {
    run(exe["web-test-assets"], [FIXTURE, ASSETS]);
    results.model = { model: `${FIXTURE} + a word vocabulary (web-test-assets)`, images: "generated" };
  }
  index = JSON.parse(readFileSync(join(ASSETS, "index.json"), "utf8"));
  assert.ok(index.images.length >= 1, "at least one test image");
  assert.ok(index.labels.length >= 2, "at least two labels");
  console.log(`model: ${results.model.model}; images: ${index.images.join(", ")}`);
});

/** The test's i-th image (cycling when there are fewer). */
const nth = (i) => index.images[i % index.images.length];

before(async () => {
  ({ server, url: baseUrl } = await serve({ "/": SITE, "/assets/": ASSETS }));
});

after(() => {
  server?.close();
  writeFileSync(join(OUT, "results.json"), JSON.stringify(results, null, 2) + "\n");
});

async function launch(webgpu) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    args: webgpu ? [...QUIET, "--enable-unsafe-webgpu"] : QUIET,
  });
}

/** Opens the page and waits until the model is loaded; collects the console for error reports. */
async function open(browser, query) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const log = [];
  page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  page.log = log;
  const url = `${baseUrl}?model=assets/model.safetensors&samples=assets/index.json${query}`;
  await page.goto(url);
  await settle(page, "ready");
  return page;
}

/** Waits for the page's state to become `want` (or error, which fails with the page's message). */
async function settle(page, want) {
  await page.waitForSelector(`body[data-state="${want}"], body[data-state="error"]`, { timeout: PAGE_TIMEOUT });
  const state = await page.getAttribute("body", "data-state");
  if (state === "error") {
    const message = await page.textContent("#error");
    assert.fail(`the page failed: ${message}\n${page.log.join("\n")}`);
  }
}

/** Does `action` (which starts captioning an image) and waits until the page is done. */
async function captioned(page, action) {
  await page.evaluate(() => (document.body.dataset.state = "waiting"));
  await action();
  await settle(page, "done");
}

/** What the page shows: both captions (text, tokens, log p, time) and the label probabilities. */
async function pageAnswers(page) {
  return page.evaluate(() => {
    const caption = (id) => {
      const d = document.getElementById(id).dataset;
      return { text: d.text, tokens: JSON.parse(d.tokens), logProb: Number(d.logProb), ms: Number(d.ms) };
    };
    const probs = [...document.querySelectorAll("#probs li")].map((li) => [li.dataset.label, Number(li.dataset.prob)]);
    return {
      image: document.getElementById("preview-box").dataset.name,
      parallel: caption("parallel"),
      greedy: caption("greedy"),
      probs,
      classifyMs: Number(document.getElementById("classify-time").dataset.ms),
      shown: {
        parallel: document.querySelector("#parallel .text").textContent,
        greedy: document.querySelector("#greedy .text").textContent,
        bars: document.querySelectorAll("#probs .bar").length,
      },
    };
  });
}

/** The page's answers for image `name` equal the CLI's. Returns the page's answers. */
async function checkAgainstCli(page, name, labels) {
  const got = await pageAnswers(page);
  assert.equal(got.image, name);
  const want = cliAnswers(name, labels);
  for (const mode of ["parallel", "greedy"]) {
    const [g, w] = [got[mode], want[mode]];
    assert.equal(g.text, w.caption, `${name} ${mode} caption`);
    assert.deepEqual(g.tokens, w.tokens, `${name} ${mode} tokens`);
    assert.ok(Math.abs(g.logProb - w.log_prob) <= LOG_PROB_TOL, `${name} ${mode} log p ${g.logProb} vs ${w.log_prob}`);
    assert.equal(got.shown[mode], g.text === "" ? "(empty caption)" : g.text, `${mode} shown`);
    assert.ok(g.ms > 0, `${mode} time shown`);
  }
  assert.deepEqual(got.probs.map(([l]) => l), labels, `${name} labels in order`);
  assert.equal(got.shown.bars, labels.length, "one bar per label");
  for (const [label, p] of got.probs) {
    const q = want.probs.get(label);
    assert.ok(Math.abs(p - q) <= PROB_TOL, `${name} p(${label}) = ${p}, CLI ${q}`);
  }
  return got;
}

function record(run, page, backend, answers) {
  results.runs[run] ??= { backend, images: [] };
  results.runs[run].images.push({
    image: answers.image,
    parallel: { caption: answers.parallel.text, ms: answers.parallel.ms },
    greedy: { caption: answers.greedy.text, ms: answers.greedy.ms },
    classify: { probs: Object.fromEntries(answers.probs), ms: answers.classifyMs },
  });
  console.log(
    `[${run}] ${answers.image}: parallel "${answers.parallel.text}" ${answers.parallel.ms.toFixed(1)} ms, ` +
      `greedy "${answers.greedy.text}" ${answers.greedy.ms.toFixed(1)} ms, ` +
      `${answers.probs.length} labels ${answers.classifyMs.toFixed(1)} ms`,
  );
}

/** Records the page's model load time for `run`. */
async function recordLoad(run, page, fields) {
  const loadMs = Number(await page.getAttribute("body", "data-load-ms"));
  results.runs[run] = { ...fields, loadMs, images: [] };
  console.log(`[${run}] backend: ${fields.backend}${fields.adapter ? `; ${fields.adapter}` : ""}; model loaded in ${loadMs.toFixed(0)} ms`);
}

/** Drops a file on the page's drop zone, as a person dragging it from the desktop would. */
async function dropFile(page, name, bytes, type) {
  const dataTransfer = await page.evaluateHandle(
    ({ bytes, name, type }) => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array(bytes)], name, { type }));
      return dt;
    },
    { bytes: [...bytes], name, type },
  );
  await page.dispatchEvent("#drop", "drop", { dataTransfer });
}

/** Waits for the page to show an error and returns its text. */
async function pageError(page) {
  await page.waitForSelector(`body[data-state="error"]`, { timeout: PAGE_TIMEOUT });
  assert.ok(await page.isVisible("#error"), "the error is shown");
  return (await page.textContent("#error")).trim();
}

describe("the browser demo", () => {
  test("on WebGPU: captions and probabilities equal the CLI's", async () => {
    const browser = await launch(true);
    try {
      const page = await open(browser, "&backend=gpu");
      const backend = await page.textContent("#backend");
      const webgpu = await page.getAttribute("#backend", "data-webgpu");
      const note = (await page.isVisible("#note")) ? await page.textContent("#note") : "";
      assert.equal(webgpu, "true", `the page fell back to "${backend}": ${note}\n${page.log.join("\n")}`);
      assert.match(backend, /^WebGPU \(/);
      assert.equal(note, "", "no fallback note on WebGPU");
      const adapter = (await page.isVisible("#adapter")) ? await page.textContent("#adapter") : "";
      await recordLoad("webgpu", page, { backend, adapter });

      // A sample image (the first captions include compiling the kernels).
      await captioned(page, () => page.click(`#samples button[data-sample="${nth(0)}"]`));
      record("webgpu", page, backend, await checkAgainstCli(page, nth(0), index.labels));
      await page.screenshot({ path: join(OUT, "webgpu.png"), fullPage: true });

      // The file picker (warm: the kernels are compiled), then labels typed by the user.
      await captioned(page, () => page.setInputFiles("#file", join(ASSETS, nth(1))));
      record("webgpu", page, backend, await checkAgainstCli(page, nth(1), index.labels));
      const typed = [index.labels[1], index.labels[0], `${index.labels[0]} ${index.labels[1]}`];
      await captioned(page, async () => {
        await page.fill("#labels", typed.join(", "));
        await page.click("#classify");
      });
      await checkAgainstCli(page, nth(1), typed);
      await page.close();

      // auto: the same policy as the CLI, the trainer and the C API (cappa::device).
      const auto = await open(browser, "");
      const autoBackend = await auto.textContent("#backend");
      if (backend.includes("software fallback")) {
        assert.equal(autoBackend, "CPU (wasm)", "auto passes a software adapter over");
        assert.match(await auto.textContent("#note"), /software/);
        await captioned(auto, () => auto.click(`#samples button[data-sample="${nth(0)}"]`));
        await checkAgainstCli(auto, nth(0), index.labels);
      } else {
        assert.match(autoBackend, /^WebGPU \(/, "auto takes a hardware adapter");
      }
      await auto.close();
    } finally {
      await browser.close();
    }
  });

  test("without WebGPU: the CPU fallback, with a note, gives the CLI's answers", async () => {
    const browser = await launch(false);
    try {
      const page = await open(browser, "");
      const backend = await page.textContent("#backend");
      assert.equal(backend, "CPU (wasm)");
      assert.equal(await page.getAttribute("#backend", "data-webgpu"), "false");
      assert.ok(await page.isVisible("#note"), "a note says why the CPU is used");
      const note = await page.textContent("#note");
      assert.match(note, /WebGPU/);
      assert.match(note, /CPU backend/);
      await recordLoad("no-webgpu", page, { backend, note });

      // Drag and drop, then a sample.
      const name = nth(2);
      await captioned(page, () => dropFile(page, name, readFileSync(join(ASSETS, name)), "image/png"));
      record("no-webgpu", page, backend, await checkAgainstCli(page, name, index.labels));
      await page.screenshot({ path: join(OUT, "cpu-fallback.png"), fullPage: true });
      await captioned(page, () => page.click(`#samples button[data-sample="${nth(0)}"]`));
      record("no-webgpu", page, backend, await checkAgainstCli(page, nth(0), index.labels));
      await page.close();

      // A browser with no WebGPU API at all (no navigator.gpu, as in browsers without WebGPU).
      const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
      await context.addInitScript(() => {
        delete Navigator.prototype.gpu;
        delete WorkerNavigator.prototype.gpu;
      });
      const bare = await open(context, "");
      assert.equal(await bare.evaluate(() => "gpu" in navigator), false, "navigator.gpu removed");
      assert.equal(await bare.textContent("#backend"), "CPU (wasm)");
      assert.match(await bare.textContent("#note"), /does not offer WebGPU/);
      await captioned(bare, () => bare.click(`#samples button[data-sample="${nth(1)}"]`));
      await checkAgainstCli(bare, nth(1), index.labels);
      await bare.screenshot({ path: join(OUT, "no-webgpu-api.png"), fullPage: true });
      await context.close();
    } finally {
      await browser.close();
    }
  });

  test("?backend=cpu forces the CPU backend where WebGPU works", async () => {
    const browser = await launch(true);
    try {
      const page = await open(browser, "&backend=cpu");
      const backend = await page.textContent("#backend");
      assert.equal(backend, "CPU (wasm)");
      assert.match(await page.textContent("#note"), /\?backend=cpu/);
      await recordLoad("backend=cpu", page, { backend });
      for (const name of [nth(0), nth(1)]) {
        await captioned(page, () => page.click(`#samples button[data-sample="${name}"]`));
        record("backend=cpu", page, backend, await checkAgainstCli(page, name, index.labels));
        if (name === nth(0)) await page.screenshot({ path: join(OUT, "cpu-forced.png"), fullPage: true });
      }
      await page.close();
    } finally {
      await browser.close();
    }
  });

  test("bad input is shown as a clear message, and the page keeps working", async () => {
    const browser = await launch(true);
    try {
      // A file that is not an image, then a good one.
      const page = await open(browser, "");
      await dropFile(page, "notes.png", Buffer.from("this is not a PNG"), "image/png");
      const message = await pageError(page);
      assert.match(message, /^notes\.png: cannot read image/, message);
      await page.screenshot({ path: join(OUT, "bad-image.png"), fullPage: true });
      await captioned(page, () => page.click(`#samples button[data-sample="${nth(0)}"]`));
      assert.ok(!(await page.isVisible("#error")), "the error is cleared by the next image");
      await checkAgainstCli(page, nth(0), index.labels);
      // Classifying with no labels says so.
      await page.fill("#labels", " , ");
      await page.click("#classify");
      const noLabels = await pageError(page);
      assert.match(noLabels, /label/i, noLabels);
      await page.close();

      // A model that is not there.
      const missing = await browser.newPage();
      await missing.goto(`${baseUrl}?model=assets/no-such-model.safetensors&samples=assets/index.json`);
      const notFound = await pageError(missing);
      assert.match(notFound, /Could not load the model/);
      assert.match(notFound, /HTTP 404/);
      await missing.close();

      // A file that is not a model (an image).
      const corrupt = await browser.newPage();
      await corrupt.goto(`${baseUrl}?model=assets/${encodeURIComponent(nth(0))}&samples=assets/index.json`);
      const bad = await pageError(corrupt);
      assert.match(bad, /Could not load the model/);
      assert.ok(bad.length > "Could not load the model: ".length + 10, `a reason is given: ${bad}`);
      results.badInput = { image: message, noLabels, missingModel: notFound, notAModel: bad };
      console.log(`[bad input] ${message} | ${noLabels} | ${notFound} | ${bad}`);
      await corrupt.screenshot({ path: join(OUT, "bad-model.png"), fullPage: true });
      await corrupt.close();
    } finally {
      await browser.close();
    }
  });
});
