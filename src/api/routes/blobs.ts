import { z } from "zod";
import type { Route } from "../router.ts";
import { HttpError, jsonResponse } from "../../system/http_error.ts";
import { readValidBody } from "../../system/http_body.ts";
import type { BlobsReport } from "../../deploy/references.ts";
import type { BlobRequest, FetchedBlob, FetchProgress } from "../../blobs/fetcher.ts";
import { BlobFetchFailed, BlobRequestInvalid } from "../../blobs/fetch_errors.ts";

/** What the blob routes need from the agent. */
export interface BlobsDeps {
  /** Verified blobs with the deployments that use them, partial and running downloads. */
  blobs(): Promise<BlobsReport & { downloads: FetchProgress[] }>;
  /** Makes a blob present (from peers or URLs). */
  fetchBlob(request: BlobRequest): Promise<FetchedBlob>;
  maxBodyBytes: number;
}

const FetchBlobBody = z.strictObject({
  sha256: z.string(),
  size: z.number().int().min(0).optional(),
  urls: z.array(z.string()).default([]),
});

/**
 * `GET /v1/blobs` and `POST /v1/blobs` (`{sha256, urls, size?}`: a verified fetch into the
 * store, as `loam fetch` does): 400 for a request that cannot succeed, 502 when no source gave
 * verified bytes.
 */
export function blobRoutes(deps: BlobsDeps): Route[] {
  return [
    {
      method: "GET",
      path: "/v1/blobs",
      scope: "status:read",
      etag: true,
      handler: async () => jsonResponse(await deps.blobs()),
    },
    {
      method: "POST",
      path: "/v1/blobs",
      scope: "deploy:write",
      handler: async ({ req }) => {
        const body = await readValidBody(req, deps.maxBodyBytes, FetchBlobBody);
        try {
          return jsonResponse(await deps.fetchBlob(body));
        } catch (err) {
          if (err instanceof BlobRequestInvalid) {
            throw new HttpError(400, "invalid_request", err.message);
          }
          if (err instanceof BlobFetchFailed) throw new HttpError(502, "fetch_failed", err.message);
          throw err;
        }
      },
    },
  ];
}
