// Minimal types for irc-framework 4.14 (the package ships none): only what src/irc/ uses.
declare module "irc-framework" {
  import { EventEmitter } from "node:events";

  export interface ClientOptions {
    host: string;
    port: number;
    nick: string;
    username?: string;
    gecos?: string;
    password?: string;
    tls?: boolean;
    rejectUnauthorized?: boolean;
    account?: { account: string; password: string };
    sasl_mechanism?: string;
    client_certificate?: { private_key: string; certificate: string };
    auto_reconnect?: boolean;
    auto_reconnect_max_retries?: number;
    ping_interval?: number;
    ping_timeout?: number;
    version?: string | null;
    encoding?: string;
    outgoing_addr?: string;
    [k: string]: unknown;
  }

  export interface MessageEvent {
    nick?: string;
    ident?: string;
    hostname?: string;
    target: string;
    message: string;
    from_server?: boolean;
    type?: string;
  }

  export class Client extends EventEmitter {
    constructor(options?: Partial<ClientOptions>);
    connect(options?: ClientOptions): void;
    quit(message?: string): void;
    raw(line: string): void;
    changeNick(nick: string): void;
    readonly connected: boolean;
    user: { nick: string; username: string; host: string; gecos: string };
    network: { name: string; options: Record<string, unknown>; supports(name: string): unknown; cap: { isEnabled(name: string): boolean } };
    connection: {
      connected: boolean;
      end(data?: string | null, hadError?: boolean): void;
      registered: number | false;
      /** The callback runs once the line is in the socket (or at once, next tick, when not connected). */
      write(data: string, callback?: (err?: Error | null) => void): boolean;
    };
  }

  const irc: { Client: typeof Client };
  export default irc;
}
