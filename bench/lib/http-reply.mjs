// HTTP/1.1 responses read off a keep-alive connection, one after another,
// however the bytes arrive: a response split across reads, several
// (pipelined) in one read. A body is framed by its Content-Length, by chunks
// (Transfer-Encoding: chunked, trailers read and skipped), or, with neither,
// by the end of the connection (the reply counts when the server closes).
// Status 2xx is a good reply, any other a bad status; 1xx interim responses
// are skipped. Heads are parsed in the bytes, without building strings: this
// runs once per reply on the load generator's hot path.
import { ReplyError } from './reply-error.mjs';

const MAX_HEAD = 64 * 1024; // also the bound on a chunk-size line plus trailers
const CR = 13;
const LF = 10;
const COLON = 58;
const SPACE = 32;
const TAB = 9;
const SEMICOLON = 59;

// What the reader expects next.
const HEAD = 0;
const BODY = 1; // Content-Length bytes
const CHUNK_SIZE = 2; // hex digits, then an extension or CR
const CHUNK_EXT = 3; // skipped up to CR
const CHUNK_SIZE_LF = 4;
const CHUNK_DATA = 5;
const CHUNK_DATA_CR = 6;
const CHUNK_DATA_LF = 7;
const TRAILER_START = 8; // a trailer line, or the CR of the blank line ending the message
const TRAILER_LINE = 9; // skipped up to LF
const END_LF = 10;
const UNTIL_CLOSE = 11;

const lower = (name) => Buffer.from(name, 'latin1');
const CONTENT_LENGTH = lower('content-length');
const TRANSFER_ENCODING = lower('transfer-encoding');
const CONNECTION = lower('connection');
const KEEP_ALIVE = lower('keep-alive');

/** Whether buf[start, end) equals `name` (lower case) ignoring ASCII case. */
function sameName(buf, start, end, name) {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    const b = buf[start + i];
    if (b !== name[i] && !(b >= 65 && b <= 90 && (b | 0x20) === name[i])) return false;
  }
  return true;
}

/**
 * The index of the first `byte` in buf[from, to), or `to`. A loop in
 * JavaScript: for a line of a head, cheaper than Buffer#indexOf's call into C++.
 */
function find(buf, byte, from, to) {
  while (from < to && buf[from] !== byte) from++;
  return from;
}

const preview = (buf, start, end) => JSON.stringify(buf.toString('latin1', start, Math.min(end, start + 80)));

function hexValue(b) {
  if (b >= 48 && b <= 57) return b - 48;
  const l = b | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/**
 * A reader of responses. `closing` turns true once a response said
 * "Connection: close" or is framed by the end of the connection: no further
 * request may be sent on it. end(onReply) is called when the server has
 * closed the connection cleanly; it completes a reply read until close.
 */
export function httpReader() {
  let state = HEAD;
  let head = null; // a partial head, copied (read buffers are reused)
  let left = 0; // bytes of the body (BODY) or chunk (CHUNK_DATA) still to come
  let kind = null; // the outcome of the response being read
  let chunkDigits = 0;
  let framingBytes = 0; // of the current chunk-size line, or of the trailers
  let interim = false; // the head just parsed was a 1xx

  /**
   * Parses the head that starts at buf[start], in one pass. Returns -1 if
   * the blank line ending it is not in buf yet (nothing is changed then),
   * else the index after that line, having set state, left and kind (or
   * `interim`, for a 1xx response: the final one follows).
   */
  function parseHead(buf, start) {
    const limit = buf.length;
    let line = find(buf, LF, start, limit) + 1;
    if (line > limit) return -1;
    const end = line; // of the status line, for the checks below
    // "HTTP/1.x NNN" then a space or the end of the line.
    if (
      end - start < 13 ||
      buf[start] !== 72 || buf[start + 1] !== 84 || buf[start + 2] !== 84 || buf[start + 3] !== 80 ||
      buf[start + 4] !== 47 || buf[start + 5] !== 49 || buf[start + 6] !== 46 || (buf[start + 7] !== 48 && buf[start + 7] !== 49) ||
      buf[start + 8] !== SPACE
    ) {
      throw new ReplyError('badReply', `not an HTTP/1.x status line: ${preview(buf, start, end)}`);
    }
    let code = 0;
    for (let i = start + 9; i < start + 12; i++) {
      const digit = buf[i] - 48;
      if (digit < 0 || digit > 9) throw new ReplyError('badReply', `bad status code: ${preview(buf, start, end)}`);
      code = code * 10 + digit;
    }
    if (buf[start + 12] !== SPACE && buf[start + 12] !== CR && buf[start + 12] !== LF) {
      throw new ReplyError('badReply', `bad status code: ${preview(buf, start, end)}`);
    }
    const http10 = buf[start + 7] === 48;
    let length = -1;
    let chunked = false;
    let otherCoding = false;
    let close = http10;
    for (;;) {
      // The blank line (CRLF, or a bare LF) ends the head.
      if (line < limit && buf[line] === LF) {
        line += 1;
        break;
      }
      if (line + 1 < limit && buf[line] === CR && buf[line + 1] === LF) {
        line += 2;
        break;
      }
      const lineEnd = find(buf, LF, line, limit);
      if (lineEnd === limit) return -1;
      const textEnd = buf[lineEnd - 1] === CR ? lineEnd - 1 : lineEnd;
      const colon = find(buf, COLON, line, textEnd);
      if (colon === line || colon === textEnd) throw new ReplyError('badReply', `malformed header line: ${preview(buf, line, textEnd)}`);
      let from = colon + 1;
      let to = textEnd;
      while (from < to && (buf[from] === SPACE || buf[from] === TAB)) from++;
      while (to > from && (buf[to - 1] === SPACE || buf[to - 1] === TAB)) to--;
      if (sameName(buf, line, colon, CONTENT_LENGTH)) {
        let value = to > from ? 0 : -1;
        for (let i = from; i < to && value >= 0; i++) {
          const digit = buf[i] - 48;
          value = digit >= 0 && digit <= 9 && value < 1e15 ? value * 10 + digit : -1;
        }
        if (value < 0 || (length !== -1 && length !== value)) throw new ReplyError('badReply', `bad Content-Length: ${preview(buf, from, to)}`);
        length = value;
      } else if (sameName(buf, line, colon, TRANSFER_ENCODING)) {
        // The last coding decides: chunked frames the body, any other leaves it to the close.
        const codings = buf.toString('latin1', from, to).toLowerCase().split(',');
        const last = codings[codings.length - 1].trim();
        chunked = last === 'chunked';
        otherCoding = !chunked && last !== 'identity';
      } else if (sameName(buf, line, colon, CONNECTION)) {
        // "keep-alive" alone, as most servers send it on every reply, in the bytes.
        if (sameName(buf, from, to, KEEP_ALIVE)) {
          if (http10) close = false;
        } else {
          const tokens = buf.toString('latin1', from, to).toLowerCase().split(',');
          for (const token of tokens) {
            if (token.trim() === 'close') close = true;
            else if (token.trim() === 'keep-alive' && http10) close = false;
          }
        }
      }
      line = lineEnd + 1;
    }
    interim = code >= 100 && code < 200 && code !== 101;
    if (interim) return line;
    if (close) reader.closing = true;
    kind = code >= 200 && code < 300 ? null : 'badStatus';
    if (code < 200 || code === 204 || code === 304) state = HEAD;
    else if (chunked) {
      state = CHUNK_SIZE;
      chunkDigits = 0;
      left = 0;
    } else if (length >= 0 && !otherCoding) {
      left = length;
      state = length > 0 ? BODY : HEAD;
    } else {
      state = UNTIL_CLOSE;
      reader.closing = true;
    }
    return line;
  }

  const reader = {
    closing: false,
    feed(data, onReply) {
      let at = 0;
      const size = data.length;
      while (at < size) {
        switch (state) {
          case HEAD: {
            // A head split across reads is parsed again whole once its end has come.
            const buf = head === null ? data : Buffer.concat([head, data.subarray(at)]);
            const start = head === null ? at : 0;
            const end = parseHead(buf, start);
            if (end === -1) {
              if (buf.length - start > MAX_HEAD) throw new ReplyError('badReply', `response head over ${MAX_HEAD} bytes`);
              head = Buffer.from(buf.subarray(start));
              return;
            }
            if (end - start > MAX_HEAD) throw new ReplyError('badReply', `response head over ${MAX_HEAD} bytes`);
            at = head === null ? end : at + end - head.length;
            head = null;
            if (interim) continue;
            if (state === HEAD) onReply(kind);
            else if (state === CHUNK_SIZE) framingBytes = 0;
            continue;
          }
          case BODY:
          case CHUNK_DATA: {
            const take = Math.min(left, size - at);
            left -= take;
            at += take;
            if (left > 0) return;
            if (state === BODY) {
              state = HEAD;
              onReply(kind);
            } else state = CHUNK_DATA_CR;
            continue;
          }
          case UNTIL_CLOSE:
            return;
        }
        // The chunk framing, a byte at a time (sizes, CRLFs and trailers are short).
        const b = data[at++];
        if (++framingBytes > MAX_HEAD) throw new ReplyError('badReply', `chunk framing over ${MAX_HEAD} bytes`);
        switch (state) {
          case CHUNK_SIZE: {
            const digit = hexValue(b);
            if (digit >= 0 && chunkDigits < 12) {
              left = left * 16 + digit;
              chunkDigits++;
            } else if (chunkDigits > 0 && (b === CR || b === SEMICOLON || b === SPACE || b === TAB)) {
              state = b === CR ? CHUNK_SIZE_LF : CHUNK_EXT;
            } else throw new ReplyError('badReply', `bad chunk size byte 0x${b.toString(16)}`);
            break;
          }
          case CHUNK_EXT:
            if (b === CR) state = CHUNK_SIZE_LF;
            break;
          case CHUNK_SIZE_LF:
            if (b !== LF) throw new ReplyError('badReply', 'chunk size line without CRLF');
            state = left > 0 ? CHUNK_DATA : TRAILER_START;
            framingBytes = 0;
            break;
          case CHUNK_DATA_CR:
            if (b !== CR) throw new ReplyError('badReply', 'chunk data longer than its size');
            state = CHUNK_DATA_LF;
            break;
          case CHUNK_DATA_LF:
            if (b !== LF) throw new ReplyError('badReply', 'chunk data without CRLF');
            state = CHUNK_SIZE;
            chunkDigits = 0;
            left = 0;
            framingBytes = 0;
            break;
          case TRAILER_START:
            state = b === CR ? END_LF : TRAILER_LINE;
            break;
          case TRAILER_LINE:
            if (b === LF) state = TRAILER_START;
            break;
          case END_LF:
            if (b !== LF) throw new ReplyError('badReply', 'chunked message without its final CRLF');
            state = HEAD;
            onReply(kind);
            break;
        }
      }
    },
    end(onReply) {
      if (state !== UNTIL_CLOSE) return;
      state = HEAD;
      onReply(kind);
    },
  };
  return reader;
}
