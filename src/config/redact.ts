/** Keys whose values are secrets and must never be printed. */
const SECRET_KEY = /(secret|password|passphrase|token|private_key)$/;

/** Replaces the value of every secret-looking key (`section.key`) with `"<redacted>"`. */
export function redactSecrets<T extends Record<string, Record<string, unknown>>>(config: T): T {
  const copy: Record<string, Record<string, unknown>> = {};
  for (const [section, values] of Object.entries(config)) {
    copy[section] = Object.fromEntries(
      Object.entries(values).map((
        [key, value],
      ) => [key, SECRET_KEY.test(key) ? "<redacted>" : value]),
    );
  }
  return copy as T;
}
