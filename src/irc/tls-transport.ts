// irc-framework's TCP/TLS transport passes neither a CA bundle nor a server name of our choosing to tls.connect
// (it always uses the host as SNI and the system's trust store). This subclass opens the TLS socket itself when a
// network configures `tls_ca_file` or `tls_servername`, and hands it to the parent's socket plumbing unchanged;
// every other connection goes through the parent as before. Certificate verification stays on: the name checked
// is `servername` (node verifies against it), the trust anchors are `ca` when given.
import { createRequire } from "node:module";
import tls from "node:tls";
import { isIP } from "node:net";

const require = createRequire(import.meta.url);
// The transport class is internal to irc-framework (no "exports" map), loaded by path.
const NetTransport = require("irc-framework/src/transports/net.js") as new (options: Record<string, unknown>) => TransportBase;

interface TransportBase {
  options: Record<string, unknown>;
  socket: unknown;
  state: number;
  requested_disconnect: boolean;
  incoming_buffer: Buffer;
  connect(): void;
  disposeSocket(): void;
  setEncoding(enc: string): boolean;
  _onSocketCreate(options: Record<string, unknown>, socket: tls.TLSSocket): void;
}

/** Our extra options on the irc-framework connect options. */
export interface TlsExtraOptions {
  tls_ca?: string;
  tls_servername?: string;
}

const SOCK_CONNECTING = 1; // the parent's state value for a socket being opened

export class TlsOptionsTransport extends NetTransport {
  override connect(): void {
    const o = this.options as Record<string, unknown> & TlsExtraOptions & {
      host: string; port?: number; tls?: boolean; rejectUnauthorized?: boolean; outgoing_addr?: string; encoding?: string;
      client_certificate?: { private_key: string; certificate: string };
    };
    if (!o.tls || (o.tls_ca === undefined && o.tls_servername === undefined)) return super.connect();
    this.disposeSocket();
    this.requested_disconnect = false;
    this.incoming_buffer = Buffer.from("");
    if (!o.encoding || !this.setEncoding(o.encoding)) this.setEncoding("utf8");
    this.state = SOCK_CONNECTING;
    const servername = o.tls_servername ?? (isIP(o.host) ? undefined : o.host);
    const socket = tls.connect({
      host: o.host,
      port: o.port ?? 6697,
      ...(servername ? { servername } : {}),
      ...(o.tls_ca !== undefined ? { ca: o.tls_ca } : {}),
      rejectUnauthorized: o.rejectUnauthorized !== false,
      ...(o.client_certificate ? { key: o.client_certificate.private_key, cert: o.client_certificate.certificate } : {}),
      ...(o.outgoing_addr ? { localAddress: o.outgoing_addr } : {}),
    });
    this.socket = socket;
    this._onSocketCreate(o, socket);
  }
}
