/**
 * @module
 * Content-addressed blobs: the fetcher makes a blob present from peers and HTTP(S) URLs with
 * streaming SHA-256, resume, retries and fail-over; store.ts keeps only verified bytes;
 * gc.ts frees space. Nothing is used before its hash verified.
 */

import pLimit from "p-limit";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../system/logger.ts";
import { UserError } from "../system/errors.ts";
import { BlobFetchFailed, BlobRequestInvalid } from "./fetch_errors.ts";
import { atomicWriteFile } from "../system/atomic_write.ts";
import { diskSpace } from "../system/disk.ts";
import { sleep } from "../system/sleep.ts";
import { parseSha256 } from "./digest.ts";
import { readBoundedJsonFile } from "../protocol/bounded_json.ts";
import type { BlobStore } from "./store.ts";
import { PartialDownload } from "./partial.ts";
import { BandwidthLimiter } from "./bandwidth.ts";
import { backoffDelay } from "./backoff.ts";
import { abortMessage, AttemptError } from "./attempt.ts";
import { httpAttempt, type PartialMeta } from "./http_attempt.ts";
import { peerAttempt, type PeerSource } from "./peer_attempt.ts";

/** How the fetcher behaves; built from `[fetch]` and `[blobs]` by {@link fetchSettings}. */
export interface FetchSettings {
  /** Peers before URLs, or after. */
  sources: "peers-first" | "urls-first";
  retries: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  timeoutMs: number;
  stallMs: number;
  maxConcurrent: number;
  bandwidthLimit: number;
  diskReserveBytes: number;
  /** PEM text of extra trusted CA certificates. */
  caPem?: string;
}

/** Reads the fetch settings from the config, loading `fetch.ca_file` if set. */
export async function fetchSettings(config: Config): Promise<FetchSettings> {
  let caPem: string | undefined;
  if (config.fetch.ca_file !== undefined) {
    try {
      caPem = await Deno.readTextFile(config.fetch.ca_file);
    } catch (err) {
      throw new UserError(`fetch.ca_file = "${config.fetch.ca_file}": ${(err as Error).message}`);
    }
    if (!caPem.includes("-----BEGIN CERTIFICATE-----")) {
      throw new UserError(`fetch.ca_file = "${config.fetch.ca_file}": no PEM certificate in it`);
    }
  }
  return {
    sources: config.fetch.sources,
    retries: config.fetch.retries,
    backoffInitialMs: config.fetch.backoff_initial_ms,
    backoffMaxMs: config.fetch.backoff_max_ms,
    timeoutMs: config.fetch.timeout_seconds * 1000,
    stallMs: config.fetch.stall_seconds * 1000,
    maxConcurrent: config.fetch.max_concurrent,
    bandwidthLimit: config.fetch.bandwidth_limit,
    diskReserveBytes: config.blobs.disk_reserve_mb * 1024 * 1024,
    ...(caPem ? { caPem } : {}),
  };
}

/** A blob to make present: its hash, where to get it, and its declared size if known. */
export interface BlobRequest {
  /** `sha256:<hex>` or hex. */
  sha256: string;
  urls: string[];
  size?: number;
}

/** A verified blob in the store. */
export interface FetchedBlob {
  /** Lowercase hex. */
  sha256: string;
  /** Its read-only file under blobs/sha256. */
  path: string;
  size_bytes: number;
}

/** Progress of one download, for bars and deployment status. */
export interface FetchProgress {
  sha256: string;
  /** Bytes on disk, including those from before a resume. */
  bytes: number;
  total?: number;
  /** Average rate of this transfer so far, bytes/s. */
  rate_bps: number;
  /** The URL or `peer:<id>` bytes are coming from. */
  source?: string;
}

/** Receives progress events. */
export type ProgressListener = (progress: FetchProgress) => void;

/** A download in progress, shared by every caller that wants the same blob. */
interface InFlight {
  promise: Promise<string>;
  listeners: Set<ProgressListener>;
  /** Callers still waiting for it. */
  waiters: number;
  /** Aborted when the last caller gave up. */
  controller: AbortController;
}

const PROGRESS_INTERVAL_MS = 250;
/** A partial's metadata (validators of the URL it came from) is small; more is damage. */
const MAX_META_BYTES = 64 * 1024;
/** Peers tried per pass: enough to route around liars and dead holders. */
const MAX_PEERS_PER_PASS = 8;

/** One place to get bytes from: a URL (id = the URL) or a peer (id = `peer:<peer id>`). */
interface Source {
  id: string;
  peer: string | undefined;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function checkUrl(url: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new BlobRequestInvalid(`"${url}" is not a URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new BlobRequestInvalid(
      `unsupported URL scheme "${parsed.protocol}" in ${url}: only http and https`,
    );
  }
}

/**
 * Makes blobs present in the store: downloads from peers that hold them and HTTP(S) URLs with
 * streaming SHA-256, resume (also from another source), retries with backoff, fail-over, size
 * and disk checks, shared in-flight downloads, a concurrency cap and a bandwidth limit; commits
 * only verified bytes. A peer that served bad bytes is not asked for that blob again.
 */
export class BlobFetcher {
  readonly #store: BlobStore;
  readonly #settings: FetchSettings;
  readonly #logger: Logger;
  readonly #limit: ReturnType<typeof pLimit>;
  readonly #limiter: BandwidthLimiter;
  readonly #client?: Deno.HttpClient;
  readonly #peers?: PeerSource;
  /** Peers that served bad bytes, per blob: never asked for that blob again. */
  readonly #badPeers = new Map<string, Set<string>>();
  /** Aborted by close(): running downloads stop at once. */
  readonly #closing = new AbortController();
  /** Latest progress of each running download. */
  readonly #latest = new Map<string, FetchProgress>();
  readonly #inFlight = new Map<string, InFlight>();
  /**
   * Running downloads of a known size, with their partials: the bytes each still needs are
   * held back from the free space every other download sees.
   */
  readonly #reservations = new Map<string, { size: number; partial: PartialDownload }>();

  readonly #received = { http: 0, peer: 0 };

  /** `peers`, when given, supplies blobs held by other nodes (the mesh). */
  constructor(store: BlobStore, settings: FetchSettings, logger: Logger, peers?: PeerSource) {
    this.#store = store;
    this.#peers = peers;
    this.#settings = settings;
    this.#logger = logger;
    this.#limit = pLimit(settings.maxConcurrent);
    this.#limiter = new BandwidthLimiter(settings.bandwidthLimit);
    if (settings.caPem) this.#client = Deno.createHttpClient({ caCerts: [settings.caPem] });
  }

  /**
   * Verified blob `request.sha256`, downloaded first when absent. Concurrent calls for one hash
   * share a download. Nothing lands under blobs/sha256 unless it verified.
   *
   * When `signal` aborts, this call rejects with its reason: at once while other callers still
   * wait for the blob, else once the download has stopped (its partial stays for a later
   * fetch of the same hash).
   *
   * @throws {BlobRequestInvalid} a malformed hash, URL or size, or nowhere to get the blob from.
   * @throws {BlobFetchFailed} no source gave verified bytes (the message names each one's error).
   */
  async ensure(
    request: BlobRequest,
    onProgress?: ProgressListener,
    signal?: AbortSignal,
  ): Promise<FetchedBlob> {
    let hex: string;
    try {
      hex = parseSha256(request.sha256);
    } catch (err) {
      throw new BlobRequestInvalid((err as Error).message);
    }
    const running = this.#inFlight.get(hex) ?? this.#begin(hex, request);
    const path = await this.#join(hex, running, onProgress, signal);
    return { sha256: hex, path, size_bytes: (await Deno.stat(path)).size };
  }

  #begin(hex: string, request: BlobRequest): InFlight {
    const controller = new AbortController();
    const flight: InFlight = {
      promise: Promise.resolve(""),
      listeners: new Set<ProgressListener>([(p) => this.#latest.set(hex, p)]),
      waiters: 0,
      controller,
    };
    flight.promise = (async () => {
      if (await this.#store.has(hex)) return this.#store.pathOf(hex);
      if (request.urls.length === 0 && !this.#peers) {
        throw new BlobRequestInvalid(
          `blob sha256:${hex} is not in the store and has no URL to fetch it from`,
        );
      }
      request.urls.forEach(checkUrl);
      if (request.size !== undefined && (!Number.isSafeInteger(request.size) || request.size < 0)) {
        throw new BlobRequestInvalid(`size ${request.size} is not a byte count`);
      }
      return await this.#limit(() => {
        controller.signal.throwIfAborted(); // every caller gave up while it was queued
        return this.#locked(hex, request, flight.listeners, controller.signal);
      });
    })().finally(() => this.#forget(hex, flight));
    this.#inFlight.set(hex, flight);
    return flight;
  }

  /** Drops a download from the shared list, unless a newer one for the same hash took its place. */
  #forget(hex: string, flight: InFlight): void {
    if (this.#inFlight.get(hex) !== flight) return;
    this.#inFlight.delete(hex);
    this.#latest.delete(hex);
  }

  /** One caller's wait on a shared download; the download stops when its last caller aborts. */
  #join(
    hex: string,
    flight: InFlight,
    onProgress?: ProgressListener,
    signal?: AbortSignal,
  ): Promise<string> {
    flight.waiters++;
    if (onProgress) flight.listeners.add(onProgress);
    if (!signal) return flight.promise;
    return new Promise<string>((resolve, reject) => {
      let left = false;
      const leave = () => {
        left = true;
        flight.waiters--;
        if (onProgress) flight.listeners.delete(onProgress);
        if (flight.waiters > 0) return reject(signal.reason);
        // a caller that comes now starts anew (and waits for this one's lock to be released)
        this.#forget(hex, flight);
        flight.controller.abort(signal.reason);
        flight.promise.then(() => reject(signal.reason), () => reject(signal.reason));
      };
      if (signal.aborted) return leave();
      signal.addEventListener("abort", leave, { once: true });
      flight.promise.then((path) => {
        if (left) return;
        signal.removeEventListener("abort", leave);
        resolve(path);
      }, (err) => {
        if (left) return;
        signal.removeEventListener("abort", leave);
        reject(err);
      });
    });
  }

  /** Bytes received since start, by source kind (HTTP URLs or mesh peers). */
  receivedBytes(): { http: number; peer: number } {
    return { ...this.#received };
  }

  /** Progress of the downloads running now. */
  downloads(): FetchProgress[] {
    return [...this.#latest.values()];
  }

  /** Stops running downloads (their partials stay for a later resume) and the HTTP client. */
  close(): void {
    this.#closing.abort(new Error("fetch cancelled: loam is stopping"));
    this.#client?.close();
  }

  /** Serialises with other processes on the same data dir through a lock file. */
  async #locked(
    hex: string,
    request: BlobRequest,
    listeners: Set<ProgressListener>,
    cancelled: AbortSignal,
  ): Promise<string> {
    await this.#store.init();
    const lock = await this.#acquireLock(this.#store.partialPaths(hex).lock);
    try {
      if (await this.#store.has(hex)) return this.#store.pathOf(hex);
      return await this.#download(hex, request, listeners, cancelled);
    } finally {
      lock.close();
    }
  }

  /**
   * Takes an exclusive flock on `path`, retrying when the file was unlinked and replaced while
   * we waited (a finished download removes its lock file).
   */
  async #acquireLock(path: string): Promise<Deno.FsFile> {
    for (;;) {
      const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
      await file.lock(true);
      const current = await Deno.stat(path).catch(() => undefined);
      if (current?.ino === (await file.stat()).ino) return file;
      file.close();
    }
  }

  /**
   * Refuses `bytes` more for download `hex` when they would not fit in the free space, less the
   * reserve and less what the other running downloads still need: two downloads that each fit
   * alone but not together do not both start.
   */
  #checkSpace(hex: string, bytes: number): void {
    const free = diskSpace(this.#store.root).free;
    let others = 0;
    for (const [other, { size, partial }] of this.#reservations) {
      if (other !== hex) others += Math.max(0, size - partial.size);
    }
    if (free - this.#settings.diskReserveBytes - others < bytes) {
      const held = others > 0 ? `, ${mib(others)} of it held for other downloads` : "";
      throw new AttemptError(
        "fatal",
        `not enough disk space in ${this.#store.root}: need ${mib(bytes)} plus the ${
          mib(this.#settings.diskReserveBytes)
        } reserve, ${mib(free)} free${held}`,
      );
    }
  }

  /** This pass's sources, in the configured order: peers holding the blob, then URLs (or not). */
  async #sources(hex: string, request: BlobRequest, skip: Set<string>, signal: AbortSignal) {
    const urls: Source[] = request.urls.map((url) => ({ id: url, peer: undefined }));
    let peers: Source[] = [];
    if (this.#peers) {
      const exclude = new Set(
        [...skip].filter((id) => id.startsWith("peer:")).map((id) => id.slice(5)),
      );
      for (const bad of this.#badPeers.get(hex) ?? []) exclude.add(bad);
      // the DHT search (up to 3 s) only when no URL is left to fall back on
      const search = request.urls.every((url) => skip.has(url));
      const holders = await this.#peers.holders(hex, exclude, search, signal).catch(() => []);
      peers = holders.slice(0, MAX_PEERS_PER_PASS).map((peer) => ({ id: `peer:${peer}`, peer }));
    }
    const all = this.#settings.sources === "peers-first"
      ? [...peers, ...urls]
      : [...urls, ...peers];
    return all.filter((s) => !skip.has(s.id));
  }

  async #download(
    hex: string,
    request: BlobRequest,
    listeners: Set<ProgressListener>,
    cancelled: AbortSignal,
  ): Promise<string> {
    const paths = this.#store.partialPaths(hex);
    const log = this.#logger.child({ sha256: hex });
    let meta = await readBoundedJsonFile(paths.meta, MAX_META_BYTES).then(
      (json) => json as PartialMeta,
      () => undefined,
    );
    const partial = await PartialDownload.open(paths.data);
    let keepPartial = true;
    try {
      if (request.size !== undefined && partial.size > request.size) await partial.reset();
      if (partial.size > 0) log.info("resuming download", { bytes: partial.size });
      if (request.size !== undefined) {
        this.#checkSpace(hex, request.size - partial.size);
        this.#reservations.set(hex, { size: request.size, partial });
      }

      const started = performance.now();
      const startBytes = partial.size;
      let lastEmit = 0;
      let source: Source | undefined;
      const emit = (force: boolean) => {
        const now = performance.now();
        if (!force && now - lastEmit < PROGRESS_INTERVAL_MS) return;
        lastEmit = now;
        const seconds = Math.max((now - started) / 1000, 1e-3);
        const progress: FetchProgress = {
          sha256: hex,
          bytes: partial.size,
          ...(request.size !== undefined ? { total: request.size } : {}),
          rate_bps: Math.round(Math.max(0, partial.size - startBytes) / seconds),
          ...(source ? { source: source.id } : {}),
        };
        for (const listener of listeners) listener(progress);
      };

      const overall = AbortSignal.any([
        AbortSignal.timeout(this.#settings.timeoutMs),
        this.#closing.signal,
        cancelled,
      ]);
      const lastError = new Map<string, string>();
      /** Sources given up on: permanent errors, and peers that served bad bytes. */
      const dead = new Set<string>();
      /** Sources whose bytes are in the partial since it was last empty ("disk": earlier runs). */
      const contributors = new Set<string>(partial.size > 0 ? ["disk"] : []);
      for (let pass = 0; pass <= this.#settings.retries; pass++) {
        let retryAfter = 0;
        const sources = await this.#sources(hex, request, dead, overall);
        if (sources.length === 0 && !this.#peers) break; // holders may still turn up: wait
        for (source of sources) {
          const context = {
            partial,
            expectedSize: request.size,
            signal: overall,
            stallMs: this.#settings.stallMs,
            limiter: this.#limiter,
            checkSpace: (bytes: number) => this.#checkSpace(hex, bytes),
            onBytes: (bytes: number) => {
              this.#received[source!.peer ? "peer" : "http"] += bytes;
              emit(false);
            },
            onRestart: (reason: string) => {
              contributors.clear();
              log.info("download restarts from zero", { source: source!.id, reason });
            },
          };
          if (partial.size === 0) contributors.clear();
          contributors.add(source.id);
          try {
            if (source.peer !== undefined) {
              await peerAttempt({ ...context, source: this.#peers!, peer: source.peer, hex });
            } else {
              await httpAttempt({
                ...context,
                url: source.id,
                meta,
                saveMeta: async (m) => {
                  meta = m;
                  await atomicWriteFile(paths.meta, JSON.stringify(m), { mode: 0o600 });
                },
                client: this.#client,
              });
            }
          } catch (err) {
            if (!(err instanceof AttemptError)) throw err;
            if (err.kind === "fatal") throw err;
            log.warn("download attempt failed", {
              source: source.id,
              kind: err.kind,
              error: err.message,
              bytes: partial.size,
            });
            lastError.set(source.id, err.message);
            if (err.kind === "permanent") dead.add(source.id);
            retryAfter = Math.max(retryAfter, err.retryAfterMs ?? 0);
            continue;
          }
          emit(true);
          const actual = partial.digestHex();
          if (actual === hex) {
            await partial.sync();
            await partial.close();
            keepPartial = false;
            const onDisk = (await Deno.stat(paths.data)).size;
            if (onDisk !== partial.size) {
              throw new AttemptError(
                "fatal",
                `${paths.data} holds ${onDisk} bytes, expected ${partial.size}`,
              );
            }
            const path = await this.#store.commit(hex, paths.data);
            await this.#store.removePartial(hex);
            log.info("blob verified and stored", { source: source.id, bytes: partial.size, path });
            return path;
          }
          await partial.reset();
          const mismatch = `hash mismatch: expected sha256:${hex}, got sha256:${actual}`;
          log.warn("downloaded bytes do not match the hash", {
            source: source.id,
            actual,
            contributors: [...contributors],
          });
          // Blame: every peer whose bytes were in it; a URL only when it alone supplied them.
          const soleSource = contributors.size === 1;
          for (const id of contributors) {
            if (id.startsWith("peer:") || (soleSource && id === source.id)) {
              dead.add(id);
              lastError.set(id, mismatch);
            }
            if (id.startsWith("peer:")) {
              const bad = this.#badPeers.get(hex) ?? new Set<string>();
              this.#badPeers.set(hex, bad.add(id.slice(5)));
            }
          }
          if (!dead.has(source.id)) lastError.set(source.id, mismatch);
          contributors.clear();
        }
        if (pass === this.#settings.retries) break;
        const delay = Math.max(
          retryAfter,
          backoffDelay(pass, this.#settings.backoffInitialMs, this.#settings.backoffMaxMs),
        );
        log.info("retrying download", { pass: pass + 1, delay_ms: Math.round(delay) });
        await sleep(Math.min(delay, this.#settings.backoffMaxMs), overall).catch(() => {
          throw new AttemptError("fatal", abortMessage(overall));
        });
      }
      const tried = new Set([...request.urls, ...lastError.keys()]);
      if (tried.size === 0) throw new AttemptError("fatal", "no peer holds it and it has no URL");
      const reasons = [...tried].map((id) => `${id}: ${lastError.get(id) ?? "not tried"}`);
      throw new AttemptError("fatal", reasons.join("; "));
    } catch (err) {
      if (!(err instanceof AttemptError)) throw err;
      throw new BlobFetchFailed(`cannot fetch sha256:${hex}: ${err.message}`);
    } finally {
      this.#reservations.delete(hex);
      if (keepPartial) {
        const size = partial.size;
        await partial.close();
        if (size === 0) await this.#store.removePartial(hex);
      }
    }
  }
}
