import assert from "node:assert/strict";
import { redactSecrets } from "./redact.ts";

Deno.test("redactSecrets hides secret-looking keys and keeps the rest", () => {
  const out = redactSecrets({
    api: { listen: "127.0.0.1:1", tls_private_key: "PEM", auth_token: "t" },
    fetch: { proxy_password: "p", retries: 3 },
  });
  assert.deepEqual(out, {
    api: { listen: "127.0.0.1:1", tls_private_key: "<redacted>", auth_token: "<redacted>" },
    fetch: { proxy_password: "<redacted>", retries: 3 },
  });
});
