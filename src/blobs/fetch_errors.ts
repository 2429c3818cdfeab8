/**
 * @module
 * The two ways a fetch fails, as types, so each caller answers in its own terms without reading
 * messages or exit codes: the CLI exits 2 or 1, the API says 400 or 502, a deployment fails.
 */

import { EXIT_USAGE, UserError } from "../system/errors.ts";

/** Exit code of a fetch that failed (network, hash mismatch, disk). */
const EXIT_FETCH_FAILED = 1;

/**
 * A request that no retry can satisfy as asked: a malformed hash, URL or size, or a blob with
 * nowhere to come from. The caller's to fix.
 */
export class BlobRequestInvalid extends UserError {
  constructor(message: string) {
    super(message, EXIT_USAGE);
    this.name = "BlobRequestInvalid";
  }
}

/** Every source was tried and none gave verified bytes; the message names each one's last error. */
export class BlobFetchFailed extends UserError {
  constructor(message: string) {
    super(message, EXIT_FETCH_FAILED);
    this.name = "BlobFetchFailed";
  }
}
