/** A parsed `host:port` listen address. */
export interface ListenAddress {
  hostname: string;
  port: number;
}

/**
 * Parses `host:port` (IPv4, hostname or `[IPv6]`, port 0-65535, 0 = ephemeral) with the WHATWG
 * URL parser; returns undefined when the text is not exactly that.
 */
export function parseListenAddress(text: string): ListenAddress | undefined {
  if (!/:\d+$/.test(text)) return undefined;
  let url: URL;
  try {
    url = new URL(`http://${text}`);
  } catch {
    return undefined;
  }
  const portText = text.slice(text.lastIndexOf(":") + 1);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return undefined;
  if (url.username || url.password || url.pathname !== "/" || url.search || url.hash) {
    return undefined;
  }
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (hostname === "") return undefined;
  return { hostname, port };
}

/** Formats an address for URLs and logs (`[::1]:7411` for IPv6). */
export function formatListenAddress(addr: ListenAddress): string {
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/** The address a local client should dial to reach a server listening on `addr`. */
export function dialableAddress(addr: ListenAddress): ListenAddress {
  if (addr.hostname === "0.0.0.0") return { ...addr, hostname: "127.0.0.1" };
  if (addr.hostname === "::") return { ...addr, hostname: "::1" };
  return addr;
}

/** Whether `hostname` only reaches this machine: 127.0.0.0/8, `::1` or `localhost`. */
export function isLoopback(hostname: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname) || hostname === "::1" ||
    hostname === "localhost";
}
