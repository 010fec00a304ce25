// What a connection sends and what counts as a reply, per workload. A
// workload has `request` (the bytes of one request) and `newReader()`, one
// per connection: its feed(data, onReply) calls onReply(kind) once per
// complete reply, with kind null for a good one or the error kind of a bad
// one ('badReply', 'badStatus'), and throws a ReplyError (reply-error.mjs) when the stream
// cannot be followed any further (the connection is then dropped).
import { httpReader } from './http-reply.mjs';

/**
 * An echo message of `size` bytes with no repeating run shorter than 251
 * bytes, so a shifted, dropped or corrupted byte fails the comparison.
 */
export function echoMessage(size) {
  const message = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) message[i] = (i % 251) ^ 0x5a;
  return message;
}

/** Fixed-size messages that must come back byte for byte. */
export function echoWorkload(size) {
  const message = echoMessage(size);
  return {
    request: message,
    newReader() {
      let offset = 0; // into the message being received
      let bad = false;
      return {
        feed(data, onReply) {
          for (let at = 0; at < data.length; ) {
            const take = Math.min(size - offset, data.length - at);
            if (!bad && data.compare(message, offset, offset + take, at, at + take) !== 0) bad = true;
            at += take;
            offset += take;
            if (offset === size) {
              offset = 0;
              onReply(bad ? 'badReply' : null);
              bad = false;
            }
          }
        },
      };
    },
  };
}

/**
 * A custom request; a reply is `replyLength` bytes, or everything up to and
 * including `delimiter` (a Buffer). Replies are not compared: only framed.
 */
export function payloadWorkload(payload, { replyLength, delimiter }) {
  return {
    request: payload,
    newReader() {
      if (replyLength !== undefined) {
        let received = 0;
        return {
          feed(data, onReply) {
            received += data.length;
            for (; received >= replyLength; received -= replyLength) onReply(null);
          },
        };
      }
      // Keep the delimiter's length - 1 last bytes: a delimiter split across reads.
      let tail = Buffer.alloc(0);
      return {
        feed(data, onReply) {
          const text = tail.length ? Buffer.concat([tail, data]) : data;
          let from = 0;
          for (let at; (at = text.indexOf(delimiter, from)) !== -1; from = at + delimiter.length) onReply(null);
          const keep = Math.max(from, text.length - (delimiter.length - 1));
          tail = Buffer.from(text.subarray(keep));
        },
      };
    },
  };
}

/** HTTP/1.1 GET of `url` (a URL) with keep-alive; extra `headers` as "Name: value" lines. */
export function httpWorkload(url, headers = []) {
  const path = `${url.pathname || '/'}${url.search}`;
  const lines = [`GET ${path} HTTP/1.1`, `Host: ${url.host}`, ...headers];
  return { request: Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), newReader: httpReader };
}

/** The workload a parsed command line (cli-args.mjs) asks for; plain data in, so it crosses to worker threads. */
export function makeWorkload(config) {
  if (config.workload === 'echo' || config.workload === 'churn') return echoWorkload(config.size);
  if (config.workload === 'http') return httpWorkload(new URL(config.url), config.headers);
  const delimiter = config.replyDelimiter === undefined ? undefined : Buffer.from(config.replyDelimiter);
  return payloadWorkload(Buffer.from(config.payload), { replyLength: config.replyLength, delimiter });
}
