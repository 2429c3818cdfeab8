/**
 * @module
 * What one job used, counted where the work is done: a job served for a peer ends with a signed
 * receipt of its tokens, but it runs through the same HTTP handlers as a local call, which know
 * nothing of receipts. The executor opens an account around the call; the model adds to it.
 */

import { AsyncLocalStorage } from "node:async_hooks";

/** Tokens a job read and wrote. */
export interface JobAccount {
  tokensIn: number;
  tokensOut: number;
}

const current = new AsyncLocalStorage<JobAccount>();

/** Runs `work` with `account` open: tokens counted anywhere inside it go to the account. */
export function withJobAccount<T>(account: JobAccount, work: () => T): T {
  return current.run(account, work);
}

/** Adds a model's token counts to the open account; nothing when none is open (a local call). */
export function countTokens(tokensIn: number, tokensOut: number): void {
  const account = current.getStore();
  if (!account) return;
  account.tokensIn += tokensIn;
  account.tokensOut += tokensOut;
}
