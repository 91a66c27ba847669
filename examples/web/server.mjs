// A static file server for the demo, bound to 127.0.0.1 (WebGPU needs a secure context, and
// 127.0.0.1 is one). Used by serve.sh for a person and imported by the browser test.
//
//   node server.mjs DIR [PORT]
//
// Serves .wasm as application/wasm (so the browser compiles it while it downloads), sends
// Content-Length (the page's progress bar) and no caching (a rebuild is seen at once).

import { createServer } from "node:http";
import { createReadStream, statSync } from "node:fs";
import { extname, join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".webp": "image/webp",
  ".ppm": "image/x-portable-pixmap",
  ".safetensors": "application/octet-stream",
};

/** The file under `root` that `rel` (URL-decoded, below a mount) names, or null. */
function fileIn(root, rel) {
  const base = resolve(root);
  let path = resolve(join(base, rel));
  if (path !== base && !path.startsWith(base + sep)) return null;
  try {
    if (statSync(path).isDirectory()) path = join(path, "index.html");
    return statSync(path).isFile() ? path : null;
  } catch {
    return null;
  }
}

/**
 * Starts serving `mounts` (URL prefix ending in "/" → folder) on 127.0.0.1:`port` (0: any free
 * port). Resolves to { server, url }.
 */
export function serve(mounts, port = 0) {
  const order = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server = createServer((req, res) => {
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, "http://x").pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    const prefix = order.find((p) => pathname.startsWith(p));
    const file = prefix === undefined ? null : fileIn(mounts[prefix], pathname.slice(prefix.length));
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405).end();
    } else if (!file) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end(`not found: ${pathname}\n`);
    } else {
      res.writeHead(200, {
        "Content-Type": TYPES[extname(file).toLowerCase()] ?? "application/octet-stream",
        "Content-Length": statSync(file).size,
        "Cache-Control": "no-store",
      });
      if (req.method === "HEAD") res.end();
      else createReadStream(file).pipe(res);
    }
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", () => {
      ok({ server, url: `http://127.0.0.1:${server.address().port}/` });
    });
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [dir = "dist", port = "8000"] = process.argv.slice(2);
  const { url } = await serve({ "/": dir }, Number(port));
  console.log(`serving ${resolve(dir)} at ${url}`);
}
