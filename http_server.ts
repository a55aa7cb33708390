/**
 * The frontend's HTTP server: node:http (Deno's Node-compatible server) carrying the Hono app
 * through @hono/node-server, with the limits an Internet-facing service needs.
 *
 * Why not `Deno.serve`: in Deno 2.9 it offers no header, request or idle timeout and no
 * connection cap (its options are port, hostname, signal, reusePort, tcpBacklog, onError,
 * onListen). Idle sockets are held forever, and at the file-descriptor limit its accept loop
 * throws "Too many open files" out of the process. Deno's node:http has `headersTimeout`,
 * `requestTimeout` and `keepAliveTimeout` enforced on a timer, and a `connection` event where
 * we keep count; a proxy with its own accept loop in front of Deno.serve would do the same
 * with three descriptors per connection instead of one.
 *
 * The cap: at most `maxConnections` sockets open (by default half the process's descriptor
 * limit, which Deno raises to the hard limit at start-up, so accept never meets EMFILE). When a new connection finds the cap
 * reached, the oldest connection that is not doing anything — no request yet, an idle
 * keep-alive, or a worker WebSocket that has not said hello — is dropped to make room: a flood
 * of idle sockets then only displaces itself, and a real request (`/v1/health`) gets in.
 */
import http from "node:http";
import type { Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";

export interface HttpLimits {
  /** open connections at most; 0: from the descriptor limit (`defaultMaxConnections`) */
  maxConnections: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** WebSocket ping interval and pong deadline, seconds (Deno.upgradeWebSocket idleTimeout) */
  webSocketIdleS: number;
  /** upgraded sockets not yet authenticated, at most; further upgrades get 503 */
  maxPendingWebSockets: number;
}

export interface ServeOptions {
  hostname: string;
  port: number;
  limits: HttpLimits;
  /** the app */
  fetch: (req: Request) => Response | Promise<Response>;
  /** WebSocket upgrades on this path go to `onWebSocket`; others are refused */
  webSocketPath: string;
  /** take over an upgraded socket; call `authenticated` once it has proven who it is */
  onWebSocket: (ws: WebSocket, authenticated: () => void) => void;
}

export interface HttpServer {
  addr: { hostname: string; port: number };
  /** sockets open now, and the cap */
  connections(): { open: number; max: number };
  shutdown(): Promise<void>;
}

/** How long `shutdown` waits for node:http to report every connection closed. */
const SHUTDOWN_GRACE_MS = 2000;

/** The soft limit on open files (Linux /proc; 1024, the usual default, elsewhere). */
export function openFileLimit(): number {
  try {
    const line = Deno.readTextFileSync("/proc/self/limits").split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    if (soft === "unlimited") return 1 << 20;
    if (soft && Number.isFinite(Number(soft))) return Number(soft);
  } catch { /* not Linux */ }
  return 1024;
}

/**
 * Half the descriptor limit: the rest is headroom for what the frontend opens itself (KV,
 * pipes of the local worker, bundle files) and for sockets accepted only to be closed.
 */
export function defaultMaxConnections(limit = openFileLimit()): number {
  return Math.max(16, Math.min(16_384, Math.floor(limit / 2)));
}

/** Open sockets, and among them the ones that may be dropped (oldest first). */
class ConnectionGuard {
  readonly open = new Set<Socket>();
  /** insertion-ordered: the first is the one idle longest */
  readonly #idle = new Set<Socket>();

  constructor(readonly max: number) {}

  /** A new connection: false when it must be refused (the cap is reached, nothing to drop). */
  admit(s: Socket): boolean {
    if (this.open.size >= this.max) {
      const oldest = this.#idle.values().next().value;
      if (!oldest) return false;
      this.remove(oldest);
      oldest.destroy();
    }
    this.open.add(s);
    this.#idle.add(s);
    s.once("close", () => this.remove(s));
    return true;
  }

  busy(s: Socket): void {
    this.#idle.delete(s);
  }

  idle(s: Socket): void {
    if (!this.open.has(s)) return;
    this.#idle.delete(s); // re-inserted last: now the most recently active
    this.#idle.add(s);
  }

  remove(s: Socket): void {
    this.open.delete(s);
    this.#idle.delete(s);
  }
}

/**
 * Answer a raw socket with a status line and close it for good: `end()` alone only half-closes,
 * and a client that never closes its side would keep the descriptor.
 */
function refuse(socket: Socket, status: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    () => socket.destroy(),
  );
}

export function serveHttp(opts: ServeOptions): Promise<HttpServer> {
  const { limits } = opts;
  const guard = new ConnectionGuard(limits.maxConnections || defaultMaxConnections());
  /** upgraded sockets: closed at shutdown (closeAllConnections does not reach them) */
  const webSockets = new Set<WebSocket>();
  /** upgraded sockets that have not authenticated yet */
  let pending = 0;
  const server = http.createServer({
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // how often the timeouts above are checked (Node's default is 30 s)
    connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
  });
  server.on("connection", (s: Socket) => {
    if (!guard.admit(s)) s.destroy();
  });
  // Deno's own Request and Response, not the adapter's lighter stand-ins swapped into the
  // globals (the default): the rest of the process and Deno.upgradeWebSocket expect the real ones.
  const app = getRequestListener(opts.fetch, { overrideGlobalObjects: false });
  server.on("request", (req, res) => {
    guard.busy(req.socket);
    res.once("close", () => guard.idle(req.socket));
    app(req, res);
  });
  server.on("upgrade", (req: http.IncomingMessage, socket: Socket, head: Uint8Array) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== opts.webSocketPath || req.headers.upgrade?.toLowerCase() !== "websocket") {
      return refuse(socket, "404 Not Found");
    }
    // Unauthenticated upgrades are bounded: each holds a descriptor until it says hello, fails
    // its deadline or stops answering pings.
    if (pending >= limits.maxPendingWebSockets) {
      return refuse(socket, "503 Service Unavailable\r\nRetry-After: 5");
    }
    // small frames (leases, wakes) leave at once instead of waiting on the peer's delayed ACK
    socket.setNoDelay(true);
    let ws: WebSocket;
    try {
      ({ socket: ws } = Deno.upgradeWebSocket(
        new Request(`http://${req.headers.host ?? "localhost"}${req.url}`, {
          headers: req.headers as Record<string, string>,
        }),
        { socket, head, idleTimeout: limits.webSocketIdleS } as Deno.UpgradeWebSocketOptions,
      ));
    } catch (e) {
      refuse(socket, "400 Bad Request");
      console.error(`[http] websocket upgrade refused: ${(e as Error).message}`);
      return;
    }
    // Deno owns the socket from here: its close is seen on the WebSocket, not on `socket`.
    webSockets.add(ws);
    pending++;
    let authenticated = false;
    ws.addEventListener("close", () => {
      guard.remove(socket);
      webSockets.delete(ws);
      if (!authenticated) pending--;
    });
    opts.onWebSocket(ws, () => {
      if (authenticated) return;
      authenticated = true;
      pending--;
      guard.busy(socket);
    });
  });
  server.on("clientError", (_err: Error, socket: Socket) => {
    if (socket.writable) refuse(socket, "400 Bad Request");
    else socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.hostname, () => {
      server.off("error", reject);
      server.on("error", (e) => console.error(`[http] ${e.message}`));
      const a = server.address() as { address: string; port: number };
      resolve({
        addr: { hostname: a.address, port: a.port },
        connections: () => ({ open: guard.open.size, max: guard.max }),
        shutdown: () =>
          new Promise<void>((done) => {
            // Deno 2.9's node:http never calls back once a socket was upgraded to a WebSocket,
            // even after it closed: wait for the callback at most SHUTDOWN_GRACE_MS.
            const timer = setTimeout(done, SHUTDOWN_GRACE_MS);
            server.close(() => {
              clearTimeout(timer);
              done();
            });
            server.closeAllConnections();
            for (const ws of webSockets) ws.close(1001, "the server is shutting down");
          }),
      });
    });
  });
}
