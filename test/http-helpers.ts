// Raw HTTP clients for the native server's tests: exact bytes in, exact bytes
// out, over loopback. Every wait ends on a socket event.
import { connect, type Socket } from 'node:net';

export interface RawReply {
  /** Everything the server sent, latin1. */
  text: string;
  /** The server closed the connection (rather than `until` being met). */
  closed: boolean;
  socket: Socket;
}

/**
 * Sends `parts` (each its own write, in order) and collects the reply until
 * `until(text)` holds or the server closes.
 */
export function rawExchange(port: number, parts: (string | Buffer)[], until?: (text: string) => boolean): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let text = '';
    let settled = false;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      resolve({ text, closed, socket });
    };
    socket.on('connect', () => {
      for (const part of parts) socket.write(part);
    });
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
      if (until?.(text)) finish(false);
    });
    socket.on('end', () => {
      socket.end(); // the server lingers until we close too
      finish(true);
    });
    socket.on('close', () => finish(true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset after the reply still shows the reply.
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') finish(true);
      else if (!settled) reject(error);
    });
  });
}

/** The status codes of the responses in a reply, in order. */
export function statuses(text: string): number[] {
  return [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/** Counts complete responses with a Content-Length body in text. */
export function completeResponses(text: string): number {
  let count = 0;
  let at = 0;
  for (;;) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return count;
    const head = text.slice(at, headEnd);
    const length = /content-length: (\d+)/i.exec(head);
    const end = headEnd + 4 + (length ? Number(length[1]) : 0);
    if (end > text.length) return count;
    count++;
    at = end;
  }
}

/** Resolves once check() holds, looking again after each turn of the event loop (bounded). */
export async function eventually(check: () => boolean, what: string, limitMs = 3000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > limitMs) throw new Error(`not within ${limitMs} ms: ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export const GET = (path = '/', extra = '') => `GET ${path} HTTP/1.1\r\nHost: t\r\n${extra}\r\n`;
