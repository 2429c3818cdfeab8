/**
 * One-time login codes for the console, as Jupyter's token URLs: `loam console` asks the agent
 * for one (with the admin token it can read on the box) and prints a URL holding it; the page
 * trades it once for a session token that expires. Memory only: a code outlives neither its
 * minute nor the agent.
 * @module
 */
import { toString as bytesToString } from "uint8arrays/to-string";
import type { Scope } from "./scopes.ts";

/** How long a code may wait to be used. */
export const CODE_TTL_MS = 60_000;
/** Codes waiting at most (an admin script in a loop cannot grow the map without bound). */
const MAX_PENDING = 64;

/** A code just made: what to put in the URL, and until when it works. */
export interface IssuedCode {
  code: string;
  expires_at: string;
}

/** The codes waiting to be used, each with the scopes the session it opens will carry. */
export class ConsoleCodes {
  readonly #pending = new Map<string, { scopes: Scope[]; expiresAt: number }>();
  readonly #ttlMs: number;

  constructor(ttlMs = CODE_TTL_MS) {
    this.#ttlMs = ttlMs;
  }

  /** A new code for a session with `scopes`; the oldest waiting code goes when too many wait. */
  issue(scopes: Scope[]): IssuedCode {
    this.#sweep();
    while (this.#pending.size >= MAX_PENDING) {
      this.#pending.delete(this.#pending.keys().next().value!);
    }
    const code = bytesToString(crypto.getRandomValues(new Uint8Array(24)), "base64url");
    const expiresAt = Date.now() + this.#ttlMs;
    this.#pending.set(code, { scopes, expiresAt });
    return { code, expires_at: new Date(expiresAt).toISOString() };
  }

  /** The scopes of `code` if it is waiting and in time; it cannot be used again either way. */
  redeem(code: string): Scope[] | undefined {
    this.#sweep();
    const found = this.#pending.get(code);
    this.#pending.delete(code);
    return found?.scopes;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [code, { expiresAt }] of this.#pending) {
      if (expiresAt <= now) this.#pending.delete(code);
    }
  }
}
