import { z } from "zod";

/**
 * The messages of `/loam/registry-sync/1`, by which a node that was away (or never met an
 * entry's owner) catches up with the registry, in one exchange on one stream (length-prefixed
 * JSON):
 *
 * 1. the node that opens the stream sends the digest of what it holds: `{digest}`, a pair
 *    `[kind/id, sha256 of the signed document]` per entry (tombstones included);
 * 2. the other answers with its documents the first lacks or holds in another version, whether
 *    more are left for another round, and the keys it wants in turn: `{documents, more, want}`;
 * 3. the first sends what was wanted: `{documents}`.
 *
 * Where both hold another version of an entry both send theirs: each keeps the winner, the same
 * one. Documents travel as their owner signed them; the receiver trusts nothing of the relay.
 * @module
 */

/** The most digest pairs and wanted keys in one message (1,000 entries for each of 20 owners). */
export const MAX_DIGEST = 20_000;
/** The most documents in one message; the rest follow in the next round. */
export const MAX_SYNC_DOCUMENTS = 2_000;

const key = z.string().min(3).max(200);

/** `kind/id` → hash of the signed document, as pairs. */
const DigestSchema = z.array(z.tuple([key, z.string().regex(/^[0-9a-f]{64}$/)])).max(MAX_DIGEST);

/** A digest: what a node holds. */
export type RegistryDigest = z.infer<typeof DigestSchema>;

const documents = z.array(z.string().min(1)).max(MAX_SYNC_DOCUMENTS);

/** Step 1: what the opening node holds. */
export const RegistrySyncRequestSchema = z.strictObject({ digest: DigestSchema });

/** Step 2: what it lacks, and the keys the answering node wants. */
export const RegistrySyncAnswerSchema = z.strictObject({
  documents,
  more: z.boolean(),
  want: z.array(key).max(MAX_DIGEST),
});

/** Step 3: what the answering node wanted. */
export const RegistrySyncPushSchema = z.strictObject({ documents });
