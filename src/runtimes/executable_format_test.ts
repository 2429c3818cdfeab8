import assert from "node:assert/strict";
import {
  executableProblem,
  HEADER_BYTES,
  readExecutableFormat,
  readHeader,
} from "./executable_format.ts";

/** An ELF header's first 20 bytes: magic, EI_CLASS, EI_DATA, EI_VERSION, then e_machine. */
function elf(elfClass: number, data: number, machine: number): Uint8Array {
  const header = new Uint8Array(HEADER_BYTES);
  header.set([0x7f, 0x45, 0x4c, 0x46, elfClass, data, 1]);
  new DataView(header.buffer).setUint16(18, machine, data === 1);
  return header;
}

const NODE = Deno.build.arch;
const OTHER = NODE === "x86_64" ? "aarch64" : "x86_64";
const EM = { x86_64: "EM_X86_64", aarch64: "EM_AARCH64" } as Record<string, string>;

Deno.test("the header of /bin/true is this node's 64-bit little-endian ELF, and runs here", async () => {
  const header = await readHeader("/bin/true");
  assert.equal(header.length, HEADER_BYTES);
  assert.deepEqual(readExecutableFormat(header), {
    format: "elf",
    bits: 64,
    bigEndian: false,
    machine: NODE === "x86_64" ? 62 : 183,
  });
  assert.equal(executableProblem(header, NODE, NODE), undefined);
  assert.equal(
    executableProblem(header, OTHER, NODE),
    `ELF for ${NODE} (${EM[NODE]}), the directive says ${OTHER}`,
  );
});

Deno.test("an ELF for another machine, class or byte order is named in the reason", () => {
  assert.equal(
    executableProblem(elf(2, 1, 183), "x86_64", "x86_64"),
    "ELF for aarch64 (EM_AARCH64), this node is x86_64",
  );
  assert.equal(
    executableProblem(elf(2, 1, 62), "arm64", "aarch64"),
    "ELF for x86_64 (EM_X86_64), this node is aarch64",
  );
  assert.equal(
    executableProblem(elf(1, 1, 3), "x86_64", "x86_64"),
    "32-bit ELF (ELFCLASS32) for i386 (EM_386), this node is x86_64",
  );
  assert.equal(
    executableProblem(elf(1, 1, 62), "x86_64", "x86_64"),
    "32-bit ELF (ELFCLASS32) for x86_64 (EM_X86_64), this node runs 64-bit programs (ELFCLASS64)",
  );
  assert.equal(
    executableProblem(elf(2, 2, 183), "aarch64", "aarch64"),
    "big-endian ELF (ELFDATA2MSB) for aarch64 (EM_AARCH64), this node is little-endian",
  );
  assert.equal(
    executableProblem(elf(2, 1, 4711), "x86_64", "x86_64"),
    "ELF for machine 4711, this node is x86_64",
  );
  assert.equal(executableProblem(elf(2, 1, 62), "amd64", "x86_64"), undefined);
  assert.equal(executableProblem(elf(2, 1, 183), "arm64", "aarch64"), undefined);
});

Deno.test("bytes without an ELF header or #! line are not an executable", () => {
  const random = crypto.getRandomValues(new Uint8Array(HEADER_BYTES));
  random[0] = 0; // neither 0x7f nor '#'
  for (const bytes of [random, new Uint8Array(), new TextEncoder().encode("echo hi\n")]) {
    assert.equal(
      executableProblem(bytes, NODE, NODE),
      "not an executable: no ELF header or #! line",
    );
  }
  assert.equal(
    executableProblem(elf(2, 1, 62).subarray(0, 4), NODE, NODE),
    "not an executable: ELF header cut short (4 bytes)",
  );
  assert.equal(
    executableProblem(elf(7, 1, 62), NODE, NODE),
    "not an executable: invalid ELF header (class 7, data 1)",
  );
});

Deno.test("a #! script runs anywhere its directive's arch matches the node", () => {
  const script = new TextEncoder().encode("#!/bin/sh\necho hi\n");
  assert.deepEqual(readExecutableFormat(script), { format: "script" });
  assert.equal(executableProblem(script, NODE, NODE), undefined);
  assert.equal(
    executableProblem(script, "riscv64", "x86_64"),
    "built for riscv64, this node is x86_64",
  );
});

Deno.test("readHeader returns what a file shorter than the header holds", async () => {
  const path = await Deno.makeTempFile();
  try {
    await Deno.writeFile(path, new Uint8Array([0x23, 0x21, 0x2f]));
    assert.deepEqual(await readHeader(path), new Uint8Array([0x23, 0x21, 0x2f]));
  } finally {
    await Deno.remove(path);
  }
});
