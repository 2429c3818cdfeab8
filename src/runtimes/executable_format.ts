/**
 * Whether a `native_binary` blob can run here as its directive says, from its first bytes: an
 * ELF file for this node's machine, 64-bit and little-endian, or a script with a `#!` line.
 * Checked before activation, so random bytes or a build for another machine fail with a reason
 * that names the mismatch instead of an exec error (or, worse, nothing until the first start).
 * @module
 */
import { normalArch } from "../system/arch.ts";

/** How many leading bytes {@link executableProblem} reads: the ELF identification and e_machine. */
export const HEADER_BYTES = 20;

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];

/** e_machine values: the architecture as {@link normalArch} spells it, and the constant's name. */
const MACHINES: Record<number, [arch: string, name: string]> = {
  3: ["i386", "EM_386"],
  8: ["mips", "EM_MIPS"],
  20: ["ppc", "EM_PPC"],
  21: ["ppc64", "EM_PPC64"],
  22: ["s390x", "EM_S390"],
  40: ["arm", "EM_ARM"],
  62: ["x86_64", "EM_X86_64"],
  183: ["aarch64", "EM_AARCH64"],
  243: ["riscv64", "EM_RISCV"],
};

/** What the first bytes of a file say it is. */
export type ExecutableFormat =
  | { format: "elf"; bits: 32 | 64; bigEndian: boolean; machine: number }
  | { format: "script" }
  | { format: "none"; reason: string };

/**
 * Reads the ELF identification (EI_CLASS, EI_DATA) and e_machine from `header`, the file's first
 * bytes ({@link HEADER_BYTES} suffice), or recognises a `#!` script.
 */
export function readExecutableFormat(header: Uint8Array): ExecutableFormat {
  if (header[0] === 0x23 && header[1] === 0x21) return { format: "script" };
  if (!ELF_MAGIC.every((byte, i) => header[i] === byte)) {
    return { format: "none", reason: "no ELF header or #! line" };
  }
  if (header.length < HEADER_BYTES) {
    return { format: "none", reason: `ELF header cut short (${header.length} bytes)` };
  }
  const [elfClass, data] = [header[4], header[5]];
  if ((elfClass !== 1 && elfClass !== 2) || (data !== 1 && data !== 2)) {
    return { format: "none", reason: `invalid ELF header (class ${elfClass}, data ${data})` };
  }
  const bigEndian = data === 2;
  const machine = new DataView(header.buffer, header.byteOffset).getUint16(18, !bigEndian);
  return { format: "elf", bits: elfClass === 1 ? 32 : 64, bigEndian, machine };
}

/** `aarch64 (EM_AARCH64)`, or `machine 4711` for one this table does not know. */
function describeMachine(machine: number): string {
  const known = MACHINES[machine];
  return known ? `${known[0]} (${known[1]})` : `machine ${machine}`;
}

/**
 * Why the program whose first bytes are `header` cannot run on a node of `nodeArch` (Deno's
 * spelling) for a directive that says `directiveArch`, e.g. "ELF for aarch64 (EM_AARCH64), this
 * node is x86_64"; undefined when it can. Nodes are 64-bit little-endian (as Deno is).
 */
export function executableProblem(
  header: Uint8Array,
  directiveArch: string,
  nodeArch: string,
): string | undefined {
  const node = normalArch(nodeArch);
  const said = normalArch(directiveArch);
  const format = readExecutableFormat(header);
  if (format.format === "none") return `not an executable: ${format.reason}`;
  if (format.format === "elf") {
    const traits = [
      ...(format.bits === 32 ? [["32-bit", "ELFCLASS32"]] : []),
      ...(format.bigEndian ? [["big-endian", "ELFDATA2MSB"]] : []),
    ];
    const label = traits.length === 0
      ? "ELF"
      : `${traits.map((t) => t[0]).join(" ")} ELF (${traits.map((t) => t[1]).join(", ")})`;
    const what = `${label} for ${describeMachine(format.machine)}`;
    const arch = MACHINES[format.machine]?.[0];
    if (arch !== node) return `${what}, this node is ${node}`;
    if (format.bits === 32) return `${what}, this node runs 64-bit programs (ELFCLASS64)`;
    if (format.bigEndian) return `${what}, this node is little-endian`;
    if (arch !== said) return `${what}, the directive says ${said}`;
  }
  if (said !== node) return `built for ${said}, this node is ${node}`;
  return undefined;
}

/** The first {@link HEADER_BYTES} of the file at `path` (fewer when it is shorter). */
export async function readHeader(path: string): Promise<Uint8Array> {
  using file = await Deno.open(path);
  const header = new Uint8Array(HEADER_BYTES);
  let filled = 0;
  while (filled < HEADER_BYTES) {
    const n = await file.read(header.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return header.subarray(0, filled);
}
