import { toString as bytesToString } from "uint8arrays/to-string";

/**
 * gossipsub's fast de-duplication key for a message as received: its origin and sequence
 * number, the pair its StrictSign message id is made of, read before the signature is checked.
 * Without it gossipsub verifies the signature of every copy a peer forwards (each message
 * arrives from up to D mesh peers) before it notices the duplicate; a key is cached only once
 * its message has passed that verification, so a forged copy cannot claim it first.
 */
export function originSeqnoKey(message: { from?: Uint8Array; seqno?: Uint8Array }): string {
  if (!message.from || !message.seqno) return "";
  return `${bytesToString(message.from, "base64")}/${bytesToString(message.seqno, "base64")}`;
}
