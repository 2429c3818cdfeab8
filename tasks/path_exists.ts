/** Whether something exists at `path` (for the tasks' build and setup steps). */
export function pathExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
