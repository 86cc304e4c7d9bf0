// Test fixture (never loaded by perimeter itself): preloaded into `perimeter up` with NODE_OPTIONS="--import ..." to
// stand for a bug. A request carrying `x-perimeter-test-fault: crash` makes the HTTP server that receives it throw
// from its request handler, in the code of whichever service owns that server, as an unforeseen TypeError would;
// `x-perimeter-test-fault: escape` throws from a timer outside every service (as a bug in up's own code would).
import { AsyncLocalStorage } from "node:async_hooks";
import http from "node:http";

// Taken at preload time, before any service exists: running in it is running in no service's context.
const outsideEveryService = AsyncLocalStorage.snapshot();
const emit = http.Server.prototype.emit;

http.Server.prototype.emit = function emitWithFault(this: http.Server, event: string | symbol, ...args: unknown[]): boolean {
  if (event === "request") {
    const fault = (args[0] as http.IncomingMessage).headers["x-perimeter-test-fault"];
    if (fault === "crash") throw new TypeError("injected fault: a request handler threw");
    if (fault === "escape") {
      outsideEveryService(() => {
        setTimeout(() => {
          throw new TypeError("injected fault: code outside every service threw");
        }, 0);
      });
    }
  }
  return Reflect.apply(emit, this, [event, ...args]) as boolean;
} as typeof http.Server.prototype.emit;
