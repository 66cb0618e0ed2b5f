// `mishkah serve` for the browser tests, on a port it chooses itself (read from its log), so no
// other process can take the port between a test choosing it and the server binding it; or on
// the port it had before (a restart the clients reconnect to). It stops with the test (its stdin
// closes) or on `stop()`.
import { spawn } from 'node:child_process';
import path from 'node:path';

export const root = path.resolve(import.meta.dirname, '../..');
export const bin = process.env.MISHKAH_BIN || path.join(root, 'target/debug/mishkah');

/** `quiet`: only the server's errors reach the test's output (the line with its port still read). */
export async function startServer(data, { port = 0, args = [], quiet = false } = {}) {
  const RUST_LOG = quiet ? 'error,mishkah_server::serve=info' : process.env.RUST_LOG || 'info';
  const server = spawn(bin, ['serve', '--data', data, '--host', '127.0.0.1', '--port', String(port),
    '--exit-on-stdin-close', ...args], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG } });
  const exited = new Promise((resolve) => server.once('exit', resolve));
  const chosen = await new Promise((resolve, reject) => {
    let log = '';
    const read = (chunk) => {
      log += chunk;
      const m = log.match(/mishkah listening addr=127\.0\.0\.1:(\d+)/);
      if (!m) return;
      server.stdout.off('data', read);
      resolve(Number(m[1]));
    };
    server.stdout.on('data', read);
    exited.then((code) => reject(new Error(`server exited (${code}): ${log}`)));
  });
  if (quiet) server.stdout.pipe(process.stderr); else server.stdout.resume();
  const stop = async (signal = 'SIGKILL') => {
    if (server.exitCode === null && server.signalCode === null) server.kill(signal);
    await exited;
  };
  return { port: chosen, base: `http://127.0.0.1:${chosen}`, stop };
}
