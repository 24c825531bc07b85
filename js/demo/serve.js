#!/usr/bin/env node
// A tiny static server for the browser demo, on 127.0.0.1 only:
//   node js/demo/serve.js [--port 8000] [--data DIR]
// serves js/ at / (the page is /demo/, onnxruntime-web comes from /node_modules/) and DIR at /data/
// (default: js/demo/artifacts). Cross-origin isolation headers let onnxruntime-web use WASM threads.
import { createServer } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css', '.png': 'image/png',
  '.map': 'application/json' };

/** Start the server; resolves to the http.Server once it listens (port 0 picks a free port). */
export function serve({ port = 8000, data = join(ROOT, 'demo', 'artifacts') } = {}) {
  const mounts = [['/data/', resolve(data)], ['/', ROOT]];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const [prefix, dir] = mounts.find(([p]) => path.startsWith(p));
    let file = normalize(join(dir, path.slice(prefix.length)));
    if (file !== dir && !file.startsWith(dir + sep)) { res.writeHead(403).end(); return; }
    try {
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200, { 'Content-Type': TYPES[extname(file)] || 'application/octet-stream',
        'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp',
        'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(`not found: ${path}\n`);
    }
  });
  return new Promise((ok, fail) => server.once('error', fail).listen(port, '127.0.0.1', () => ok(server)));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '8000' }, data: { type: 'string' } } });
  const server = await serve({ port: Number(values.port), data: values.data });
  console.log(`serving http://127.0.0.1:${server.address().port}/demo/ (Ctrl-C stops)`);
}
