/** Every scope a token can carry; `*` (admin) grants all of them plus token management. */
export const SCOPES = [
  "status:read",
  "deploy:write",
  "infer:run",
  "metrics:read",
  "registry:read",
  "registry:write",
  "*",
] as const;

/** One API scope. */
export type Scope = (typeof SCOPES)[number];

/** True when `text` names a scope. */
export function isScope(text: string): text is Scope {
  return (SCOPES as readonly string[]).includes(text);
}

/** True when a token holding `held` may use a route that requires `required`. */
export function grants(held: readonly Scope[], required: Scope): boolean {
  return held.includes("*") || held.includes(required);
}
