/**
 * `deno task bench`: prints benchmark ratios against a baseline measured in the same run.
 * Nothing is measured yet: the first benchmark (fetch vs `curl | sha256sum`) arrives with the
 * blob fetcher (issue 3).
 * @module
 */
console.log("nothing to benchmark yet: the blob fetcher (issue 3) brings the first benchmark");
