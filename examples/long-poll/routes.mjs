// The long-poll HTTP interface over a Mailbox, for any server whose requests
// and responses look like node:http's (the native listenHTTP one, node:http):
//   GET  /poll?uid=U      held until U's next message: 200 and the message;
//                         after the maximum wait: 204
//   POST /publish?uid=U   the body is the message for U: 202 once it is in Redis
// Anything else: 400 (no or bad uid), 404 (path), 405 (method), 413 (body too big).

/** Longest uid: it is part of a Redis key and of every announcement. */
const MAX_UID_LENGTH = 256;
/** Largest message (a publish's body). */
export const MAX_MESSAGE_BYTES = 64 * 1024;

const ROUTES = { '/poll': 'GET', '/publish': 'POST' };

function reply(mailbox, response, status, body = '') {
  response.statusCode = status;
  // The server is draining (a restart): the client opens its next connection to a server staying.
  if (mailbox.stopped) response.setHeader('Connection', 'close');
  if (body !== '') response.setHeader('Content-Type', status === 200 ? 'application/octet-stream' : 'text/plain');
  response.end(body);
}

function readBody(request, maxBytes, done) {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > maxBytes) {
    done(null);
    return;
  }
  const chunks = [];
  let bytes = 0;
  request.on('data', (chunk) => {
    bytes += chunk.length;
    if (bytes <= maxBytes) chunks.push(chunk);
  });
  request.on('end', () => done(bytes <= maxBytes ? Buffer.concat(chunks, bytes) : null));
}

/**
 * handle(request, response, whenGone): whenGone(cancel) has the server call
 * cancel() if the client goes away before the response ends (a call after
 * it ended does nothing).
 */
export function longPollRoutes(mailbox) {
  return (request, response, whenGone) => {
    const url = new URL(request.url, 'http://host');
    const method = ROUTES[url.pathname];
    if (method === undefined) return reply(mailbox, response, 404, 'no such path: use GET /poll?uid=U or POST /publish?uid=U\n');
    if (request.method !== method) {
      response.setHeader('Allow', method);
      return reply(mailbox, response, 405, `${url.pathname} takes ${method}\n`);
    }
    const uid = url.searchParams.get('uid');
    if (!uid || uid.length > MAX_UID_LENGTH) return reply(mailbox, response, 400, `uid must be 1 to ${MAX_UID_LENGTH} characters\n`);
    if (method === 'GET') {
      whenGone(mailbox.wait(uid, (message) => (message === null ? reply(mailbox, response, 204) : reply(mailbox, response, 200, message))));
      return;
    }
    readBody(request, MAX_MESSAGE_BYTES, (message) => {
      if (message === null) return reply(mailbox, response, 413, `a message is at most ${MAX_MESSAGE_BYTES} bytes\n`);
      mailbox.publish(uid, message).then(
        () => reply(mailbox, response, 202),
        (error) => reply(mailbox, response, 503, `redis: ${error.message}\n`),
      );
    });
  };
}
