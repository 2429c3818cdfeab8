import type { DeploymentDirective } from "../protocol/directive.ts";

/**
 * True when `newer` (a `replace_existing` directive) takes the place of `older` on a node that
 * runs both: they provide a capability in common or, when `newer` names none, an artifact of the
 * same name. The engine retires what this matches once `newer` is active.
 */
export function replaces(newer: DeploymentDirective, older: DeploymentDirective): boolean {
  const provides = new Set(newer.capabilities);
  if (provides.size > 0) return older.capabilities.some((c) => provides.has(c));
  return newer.artifact.name !== undefined && older.artifact.name === newer.artifact.name;
}

/**
 * True when `older` is no longer in force for the fleet because `newer` replaces it everywhere:
 * `newer` is a later `replace_existing` directive for the same scope that {@link replaces} it.
 * A late node then gets only `newer`, rather than starting `older` to retire it again. Other
 * scopes are not compared: a narrower `newer` leaves `older` in force for the rest.
 */
export function supersedes(newer: DeploymentDirective, older: DeploymentDirective): boolean {
  return newer.options.replace_existing &&
    Date.parse(newer.issued_at) > Date.parse(older.issued_at) &&
    JSON.stringify(newer.scope) === JSON.stringify(older.scope) && replaces(newer, older);
}
