/**
 * `deno task build`: not built yet. Packaging (`deno compile` per target, SHA256SUMS) arrives
 * with issue 8; until then this says so and exits 3 so no one mistakes it for a build.
 * @module
 */
console.error("deno task build: not available yet; packaging per target arrives with issue 8");
Deno.exit(3);
