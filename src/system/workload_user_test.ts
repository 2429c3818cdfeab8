import assert from "node:assert/strict";
import { findUser, unreachableBy } from "./workload_user.ts";

Deno.test("users are found in /etc/passwd text by name", () => {
  const passwd =
    "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
  assert.deepEqual(findUser(passwd, "nobody"), { name: "nobody", uid: 65534, gid: 65534 });
  assert.equal(findUser(passwd, "loam"), undefined);
});

Deno.test("a directory on the way that others cannot search is named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a/b`, { recursive: true });
    await Deno.chmod(dir, 0o711);
    await Deno.chmod(`${dir}/a`, 0o700);
    const nobody = { name: "nobody", uid: 65534, gid: 65534 };
    assert.match(
      (await unreachableBy(nobody, `${dir}/a/b`))!,
      new RegExp(`${dir}/a is not searchable by nobody \\(mode 700\\)`),
    );
    await Deno.chmod(`${dir}/a`, 0o711);
    assert.equal(await unreachableBy(nobody, `${dir}/a/b`), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
