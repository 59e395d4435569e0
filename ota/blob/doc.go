// Package blob owns where firmware bytes live: the blob stores behind --blob-store, a local
// directory (file://DIR, the default) or an S3 bucket through minio-go (s3://BUCKET?...). It
// must not touch raft, the state store or HTTP: the firmware handlers stream an upload into a
// Store and serve a download out of one, and the record that names the blob lives in raft.
//
// Every store keeps the same promises, because the API layer answers the same way whichever
// one is configured (SPEC §4.7):
//
//   - Put never leaves a partial blob under its key. The file store writes into
//     <dir>/.tmp, fsyncs and renames; S3 commits a single PUT or a completed multipart
//     upload, both atomic, and a failed multipart upload is aborted. An error from the
//     caller's reader (a size limit, a hash mismatch decided upstream, a client gone) comes
//     back as itself, so the caller can match it with errors.Is.
//   - Put streams with bounded memory: the file store copies through one 256 KiB buffer;
//     S3 uploads hold one 5 MiB part at a time. minio-go would otherwise size each part of
//     an upload of unknown length for a 5 TiB object (~528 MiB), per upload.
//   - A store that cannot be reached is still a store: Open fails only on a malformed URL,
//     so a node starts without its S3 and answers 503 blob_store_unavailable until it
//     returns. Failures of the store itself match ErrUnavailable and carry its message;
//     a missing blob matches ErrNotFound; a key that could escape its store matches
//     ErrBadKey.
//
// Decisions worth knowing:
//
//   - file:// takes everything after the scheme as a path, so the default
//     file://./data/blobs stays relative to the working directory as --data-dir does.
//   - Stale temp files (left by a crash mid-upload) are removed when a file store opens
//     once they have not been written for ten minutes: an upload in progress in another
//     store on the same directory keeps touching its temp file and is left alone.
//   - Credentials for S3 come only from the environment (AWS_ACCESS_KEY_ID,
//     AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN); a URL carrying user:password is
//     refused so that secrets never reach flags, logs or String.
//   - An S3 upload of unknown size is limited to 10,000 parts of 5 MiB (about 48.8 GiB),
//     far above the 2 GiB --firmware-max-bytes default; a known size picks a larger part.
//   - S3 requests are retried 3 times, not minio-go's 10, so an unreachable store is
//     reported within about a second instead of several.
package blob
