// What a server does with a request body it refused before reading (wrong route, missing or bad credentials, a
// forbidden destination). Left to Node, the body is either read and thrown away to keep the connection (gigabytes a
// minute per socket: a free CPU and bandwidth sink for anyone who can connect) or, with `Connection: close`, the
// socket is closed at once with the body unread, which makes the kernel send a reset that can destroy the answer
// before the client has read it. Instead: the answer goes out, reading stops (TCP flow control holds the client
// back, at no cost here), and the connection is closed a moment later, once the client has had time to read it.
import type { IncomingMessage, ServerResponse } from "node:http";

/** How long a client gets to read a refusal before its connection is closed. */
export const REFUSAL_LINGER_MS = 1000;

/** Whether `request` still has body bytes that nobody has read (none for a request without a body). */
export function hasUnreadBody(request: IncomingMessage): boolean {
  if (request.complete) return false;
  const length = request.headers["content-length"];
  return request.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * Stops reading an unread body at once: call it as soon as a request is refused when the answer comes later (after
 * its audit record commits), or Node reads the body as fast as the client sends while the answer waits. Returns
 * whether there was an unread body.
 */
export function stopReadingBody(request: IncomingMessage): boolean {
  if (!hasUnreadBody(request)) return false;
  // A paused request that has been read from is not drained by Node when the answer finishes (it only dumps requests
  // nobody consumed): its buffer fills to the high-water mark, the parser stops reading the socket, and the client's
  // sends stall in TCP flow control. Paused without the read, its body still streams in (measured: ~470 MiB a second).
  request.pause();
  request.read(0);
  return true;
}

/**
 * Call before ending a refusal: when the request body has not been read, the connection stops reading once the
 * answer is sent and is closed REFUSAL_LINGER_MS later. Returns whether it will be closed.
 */
export function closeAfterAnswerIfBodyUnread(response: ServerResponse, lingerMs = REFUSAL_LINGER_MS): boolean {
  const request = response.req;
  if (!stopReadingBody(request)) return false;
  const socket = request.socket;
  // The client must not send its next request on this connection: nothing reads it any more, so a keep-alive client
  // would see that request reset a moment later (an agent's SDK then retries or fails a request that was never seen).
  // `Connection: close` says so; but Node closes the socket as soon as such an answer is written, unread body and
  // all, which is the reset the linger avoids — so its close becomes a half-close (FIN after the answer) and the
  // socket itself is destroyed after the linger.
  if (!response.headersSent) {
    response.setHeader("connection", "close");
    socket.destroySoon = function destroySoonAfterLinger(this: typeof socket) {
      if (this.writable) this.end();
    };
  }
  response.once("finish", () => {
    setTimeout(() => socket.destroy(), lingerMs).unref();
  });
  return true;
}
