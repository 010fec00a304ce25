// Bun.serve answering every request with 200 "hello world" (bench/http.mjs).
// Prints "listening PORT".
const server = Bun.serve({
  port: Number(process.argv[2] ?? 0),
  hostname: '127.0.0.1',
  idleTimeout: 60,
  fetch: () => new Response('hello world'),
});
process.stdout.write(`listening ${server.port}\n`);
