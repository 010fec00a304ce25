// HTTP/1.1 responses read off a keep-alive connection, one after another,
// however the bytes arrive: a response split across reads, several
// (pipelined) in one read. A response is framed by its Content-Length; one
// without (chunked, or read until close) cannot be timed and ends the
// connection as a bad reply. Status 2xx is a good reply, any other a bad status.
import { ReplyError } from './reply-error.mjs';

const MAX_HEAD = 64 * 1024;
const HEAD_END = '\r\n\r\n';

/** The outcome ('badStatus' or null) and body length of one response head (its text, without the blank line). */
function parseHead(text, reader) {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0]);
  if (!status) throw new ReplyError('badReply', `not an HTTP/1.x status line: ${JSON.stringify(lines[0].slice(0, 80))}`);
  const code = Number(status[1]);
  let length;
  for (let i = 1; i < lines.length; i++) {
    const colon = lines[i].indexOf(':');
    if (colon <= 0) throw new ReplyError('badReply', `malformed header line: ${JSON.stringify(lines[i].slice(0, 80))}`);
    const name = lines[i].slice(0, colon).trim().toLowerCase();
    const value = lines[i].slice(colon + 1).trim();
    if (name === 'content-length') {
      if (!/^\d+$/.test(value) || (length !== undefined && length !== Number(value))) {
        throw new ReplyError('badReply', `bad Content-Length: ${JSON.stringify(value)}`);
      }
      length = Number(value);
    } else if (name === 'transfer-encoding' && value.toLowerCase() !== 'identity') {
      throw new ReplyError('badReply', `Transfer-Encoding ${value} is not supported: reply with a Content-Length`);
    } else if (name === 'connection' && value.toLowerCase().split(/\s*,\s*/).includes('close')) {
      reader.closing = true;
    }
  }
  const bodiless = code < 200 || code === 204 || code === 304;
  if (length === undefined && !bodiless) throw new ReplyError('badReply', `status ${code} without a Content-Length`);
  return { kind: code >= 200 && code < 300 ? null : 'badStatus', length: bodiless ? 0 : length };
}

/**
 * A reader of responses. `closing` turns true once a response said
 * "Connection: close": the server will end the connection after it.
 */
export function httpReader() {
  let head = null; // a partial head, copied (read buffers are reused)
  let bodyLeft = 0;
  let bodyKind = null; // the outcome of the response whose body is being read
  const reader = {
    closing: false,
    feed(data, onReply) {
      let at = 0;
      while (at < data.length) {
        if (bodyLeft > 0) {
          const take = Math.min(bodyLeft, data.length - at);
          bodyLeft -= take;
          at += take;
          if (bodyLeft === 0) onReply(bodyKind);
          continue;
        }
        const rest = data.subarray(at);
        const text = head ? Buffer.concat([head, rest]) : rest;
        const end = text.indexOf(HEAD_END);
        if (end === -1) {
          if (text.length > MAX_HEAD) throw new ReplyError('badReply', `response head over ${MAX_HEAD} bytes`);
          head = Buffer.from(text);
          return;
        }
        at += end + HEAD_END.length - (head ? head.length : 0);
        head = null;
        const { kind, length } = parseHead(text.toString('latin1', 0, end), reader);
        if (length === 0) onReply(kind);
        else {
          bodyLeft = length;
          bodyKind = kind;
        }
      }
    },
  };
  return reader;
}
