/**
 * @module
 * One spelling of a CPU architecture for everything that compares them: a directive's
 * `native_binary.arch` and `requirements.architectures`, an executable's ELF header and the
 * probed host. It sits below deploy/ and runtimes/, which both need it.
 */

const ARCH_ALIASES: Record<string, string> = { arm64: "aarch64", amd64: "x86_64", x64: "x86_64" };

/** `arm64` → `aarch64`, `amd64` → `x86_64`, lowercase. */
export const normalArch = (arch: string): string =>
  ARCH_ALIASES[arch.toLowerCase()] ?? arch.toLowerCase();
