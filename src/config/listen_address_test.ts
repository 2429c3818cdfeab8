import assert from "node:assert/strict";
import { dialableAddress, formatListenAddress, parseListenAddress } from "./listen_address.ts";

Deno.test("parseListenAddress accepts host:port forms and rejects everything else", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:7411"), { hostname: "127.0.0.1", port: 7411 });
  assert.deepEqual(parseListenAddress("0.0.0.0:0"), { hostname: "0.0.0.0", port: 0 });
  assert.deepEqual(parseListenAddress("localhost:80"), { hostname: "localhost", port: 80 });
  assert.deepEqual(parseListenAddress("[::1]:7411"), { hostname: "::1", port: 7411 });
  for (
    const bad of [
      "nonsense",
      "127.0.0.1",
      ":7411",
      "127.0.0.1:65536",
      "1.2.3.4:-1",
      "a b:1",
      "h:1/x",
      "u@h:1",
      "::1:7411",
    ]
  ) {
    assert.equal(parseListenAddress(bad), undefined, bad);
  }
});

Deno.test("formatListenAddress brackets IPv6 and dialableAddress maps wildcards to loopback", () => {
  assert.equal(formatListenAddress({ hostname: "::1", port: 1 }), "[::1]:1");
  assert.equal(formatListenAddress({ hostname: "10.0.0.1", port: 2 }), "10.0.0.1:2");
  assert.deepEqual(dialableAddress({ hostname: "0.0.0.0", port: 3 }), {
    hostname: "127.0.0.1",
    port: 3,
  });
  assert.deepEqual(dialableAddress({ hostname: "::", port: 3 }), { hostname: "::1", port: 3 });
});
