import { z } from "zod";

/**
 * A directive's or rollback order's id: safe as a file name (records and the archive are stored
 * under it) and in a URL path, at most 128 characters.
 */
export const OrderIdSchema = z.string().regex(
  /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
  "expected 1-128 letters, digits, ., _, : or -",
);
