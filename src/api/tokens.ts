import { z } from "zod";
import { toString as bytesToString } from "uint8arrays/to-string";
import { isScope, type Scope, SCOPES } from "./scopes.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import { readBoundedJsonFile } from "../protocol/bounded_json.ts";
import { UserError } from "../system/errors.ts";
import { sha256Hex } from "../blobs/digest.ts";

/** Name of the token created on first start, whose secret is written to admin.token. */
const ADMIN_TOKEN_NAME = "admin";

const TOKEN_PREFIX = "loam_";
/** tokens.json holds names and hashes; anything this large was not written by loam. */
const MAX_TOKEN_FILE_BYTES = 4 * 1024 * 1024;

const TokenRecordSchema = z.strictObject({
  name: z.string(),
  scopes: z.array(z.string().refine(isScope, "unknown scope")),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  created_at: z.string(),
  expires_at: z.iso.datetime({ offset: true }).optional(),
});

const TokenFileSchema = z.strictObject({
  version: z.literal(1),
  tokens: z.array(TokenRecordSchema),
});

/** A stored token: its name, scopes and the SHA-256 of its secret (never the secret). */
export interface TokenRecord {
  name: string;
  scopes: Scope[];
  sha256: string;
  created_at: string;
  /** Past this time the token is refused (and dropped at the next write); absent: never. */
  expires_at?: string;
}

/** A token made for a console login: its name, secret (shown once) and end. */
export interface SessionToken {
  name: string;
  token: string;
  scopes: Scope[];
  expires_at: string;
}

/** Whether `record` has expired at `now`. */
function expired(record: TokenRecord, now = Date.now()): boolean {
  return record.expires_at !== undefined && Date.parse(record.expires_at) <= now;
}

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function newSecret(): string {
  return TOKEN_PREFIX + bytesToString(crypto.getRandomValues(new Uint8Array(32)), "base64url");
}

/** Parses a comma-separated scope list, naming any unknown scope. */
export function parseScopes(text: string): Scope[] {
  const parts = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (parts.length === 0) throw new UserError("--scopes needs at least one scope");
  for (const part of parts) {
    if (!isScope(part)) {
      throw new UserError(
        `unknown scope "${part}" (known: ${SCOPES.join(", ")})`,
      );
    }
  }
  return [...new Set(parts as Scope[])];
}

/** Secrets whose hashes are remembered (the map starts over when full). */
const HASHES_KEPT = 256;

/**
 * How long a request trusts the last look at tokens.json: a stat per request cost a real-time
 * client a third of a millisecond, and a token made or revoked by `loam token` applies this
 * much later at most.
 */
const FILE_CHECK_MS = 250;

/**
 * The API tokens of one data directory, stored hashed in tokens.json (mode 0600). Reloads the
 * file when it changes on disk, so tokens made by `loam token` apply to a running agent.
 */
export class TokenStore {
  #path: string;
  #records: TokenRecord[] = [];
  #byHash = new Map<string, TokenRecord>();
  #stamp = "";
  /** Hashes of recently presented secrets: a client polling at 30 Hz need not hash each time. */
  #hashes = new Map<string, string>();
  /** performance.now() of the last look at tokens.json. */
  #checkedAt = -Infinity;

  constructor(path: string) {
    this.#path = path;
  }

  /** True when tokens.json exists. */
  async exists(): Promise<boolean> {
    return (await this.#stat()) !== undefined;
  }

  async #stat(): Promise<Deno.FileInfo | undefined> {
    try {
      return await Deno.stat(this.#path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  /** Re-reads tokens.json when its size or mtime changed since the last read. */
  async refresh(): Promise<void> {
    this.#checkedAt = performance.now();
    const info = await this.#stat();
    const stamp = info ? `${info.size}:${info.mtime?.getTime()}:${info.ino}` : "";
    if (stamp === this.#stamp) return;
    let records: TokenRecord[] = [];
    if (info) {
      let json: unknown;
      try {
        json = await readBoundedJsonFile(this.#path, MAX_TOKEN_FILE_BYTES);
      } catch (err) {
        throw new UserError(
          `token file ${this.#path} is not valid JSON: ${(err as Error).message}`,
        );
      }
      const parsed = TokenFileSchema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new UserError(
          `token file ${this.#path} is invalid at ${
            issue.path.join(".") || "top level"
          }: ${issue.message}`,
        );
      }
      records = parsed.data.tokens as TokenRecord[];
    }
    this.#records = records;
    this.#byHash = new Map(records.map((r) => [r.sha256, r]));
    this.#stamp = stamp;
  }

  /** Names, scopes, creation and expiry times of the tokens in force. */
  async list(): Promise<Omit<TokenRecord, "sha256">[]> {
    await this.refresh();
    return this.#records.filter((r) => !expired(r)).map(({ sha256: _, ...shown }) => shown);
  }

  /**
   * Creates a token and returns its secret, which is not stored and cannot be shown again. With
   * `expiresAt`, the token stops working then.
   */
  async create(
    name: string,
    scopes: Scope[],
    secret = newSecret(),
    expiresAt?: Date,
  ): Promise<string> {
    if (!NAME_PATTERN.test(name)) {
      throw new UserError(
        `invalid token name "${name}": use 1-64 letters, digits, '.', '_' or '-'`,
      );
    }
    await this.refresh();
    // expired tokens go at the next write: a console login a day does not grow the file
    const kept = this.#records.filter((r) => !expired(r));
    if (kept.some((r) => r.name === name)) {
      throw new UserError(`a token named "${name}" already exists; revoke it first`);
    }
    const record: TokenRecord = {
      name,
      scopes,
      sha256: sha256Hex(secret),
      created_at: new Date().toISOString(),
      ...(expiresAt ? { expires_at: expiresAt.toISOString() } : {}),
    };
    await this.#save([...kept, record]);
    return secret;
  }

  /**
   * A token for one console login (`console-<8 hex>`), with `scopes`, that expires after
   * `ttlMs`: the page holds it instead of the admin token, and it is useless once it ends.
   */
  async createSession(scopes: Scope[], ttlMs: number): Promise<SessionToken> {
    const name = `console-${crypto.randomUUID().slice(0, 8)}`;
    const expiresAt = new Date(Date.now() + ttlMs);
    const token = await this.create(name, scopes, newSecret(), expiresAt);
    return { name, token, scopes, expires_at: expiresAt.toISOString() };
  }

  /** Removes the token called `name`; throws when there is none. */
  async revoke(name: string): Promise<void> {
    await this.refresh();
    const rest = this.#records.filter((r) => r.name !== name);
    if (rest.length === this.#records.length) {
      throw new UserError(`no token named "${name}"`);
    }
    await this.#save(rest);
  }

  /**
   * The token whose secret is `secret`, or undefined. tokens.json is looked at every
   * FILE_CHECK_MS, and once more before a well-formed secret is refused: a token `loam token
   * create` made a moment ago works at once (a revoked one still stops within FILE_CHECK_MS).
   */
  async authenticate(secret: string): Promise<TokenRecord | undefined> {
    const fresh = performance.now() - this.#checkedAt >= FILE_CHECK_MS;
    if (fresh) await this.refresh();
    if (!secret.startsWith(TOKEN_PREFIX)) return undefined;
    let hash = this.#hashes.get(secret);
    if (hash === undefined) {
      hash = sha256Hex(secret);
      if (this.#hashes.size >= HASHES_KEPT) this.#hashes.clear();
      this.#hashes.set(secret, hash);
    }
    let known = this.#byHash.get(hash);
    if (!known && !fresh) {
      await this.refresh();
      known = this.#byHash.get(hash);
    }
    return known && !expired(known) ? known : undefined;
  }

  /**
   * On first start (no tokens.json yet) creates the admin token with scope `*`, writing its
   * secret to `adminTokenPath` (mode 0600) before the hash is stored. Returns true when it did.
   */
  async ensureAdmin(adminTokenPath: string): Promise<boolean> {
    if (await this.exists()) return false;
    const secret = newSecret();
    await atomicWriteFile(adminTokenPath, secret + "\n", { mode: 0o600 });
    await this.create(ADMIN_TOKEN_NAME, ["*"], secret);
    return true;
  }

  async #save(records: TokenRecord[]): Promise<void> {
    const text = JSON.stringify({ version: 1, tokens: records }, null, 2) + "\n";
    await atomicWriteFile(this.#path, text, { mode: 0o600 });
    this.#stamp = "";
    await this.refresh();
  }
}
