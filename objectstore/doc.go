// Package objectstore stores a clone's files (uploaded documents, exports, generated
// artifacts) so that no clone can ever read, write, list, presign or delete another
// clone's objects.
//
// It follows the portable type + driver pattern of go-cloud's blob package: [Bucket] is
// the one concrete type applications use; it owns validation, key building, post-checks
// and error classification, and delegates storage to a driver (package
// objectstore/driver). Backends:
//
//   - objectstore/fileobject: the local filesystem, the embedded default (atomic writes,
//     HMAC-signed links served by an http.Handler).
//   - objectstore/s3object: Amazon S3 or any S3-compatible server (MinIO), on
//     aws-sdk-go-v2, with presigned URLs and POST-policy upload tickets signed by
//     short-lived STS credentials confined to the clone's prefix.
//
// # Keys
//
// Every object key is built from the clone context only:
//
//	tenants/{tenant_id}/clones/{clone_id}/{kind}/{name}
//
// Callers give a kind ([ValidateKind]: "documents", "uploads", ...) and a relative name
// ([ValidateName]), or let the SDK pick the name ([Bucket.Create], [NewName]). Names are
// validated before any driver call: "." and ".." segments, percent-encoded sequences,
// absolute paths, backslashes, ":", control and format characters, separator
// look-alikes, Windows device names, trailing dots and spaces, invalid UTF-8, non-NFC
// forms, names that NFKC folding would turn into any of these, and over-long names are
// refused with clone.ErrInvalidInput and one audit event. Beneath that check every
// driver refuses, on its own, any key outside the clone's prefix it is given
// (driver.ErrOutOfScope).
//
// # Defense in depth
//
// Keys the store lists are checked again against the clone's prefix; objects carry
// their owner's tenant and clone IDs in metadata, compared on every read. A mismatch
// fails the call with clone.ErrIsolationViolation and an audit.Violation event instead
// of returning data. Another clone's object is reported exactly like a missing one
// (clone.ErrNotFound, HTTP 404), so IDs cannot be probed.
//
// # Only provisioned clones
//
// A clone context is only proof of who is asking, not that the clone exists. Hosts set
// [Options.CheckClone] so that an unprovisioned clone (a typo in an ID must not
// silently create a prefix) or a suspended one is refused before anything is touched.
//
// # Signed URLs and upload tickets
//
// [Bucket.SignedURL] signs GET and PUT URLs for one key of the calling clone, valid for
// [DefaultURLExpiry] (15 minutes) unless asked otherwise and never longer than
// [Options.MaxURLExpiry] (default [DefaultMaxURLExpiry], one hour; at most
// [HardMaxURLExpiry], seven days). [Bucket.SignRequest] returns the same request with
// the headers a PUT must send, binding the owner stamps into the signature. A PUT URL
// cannot limit the upload's size, so uploads
// from untrusted clients use [Bucket.UploadTicket] (an S3 POST policy with a fixed key,
// content type, owner stamps and content-length range) followed by
// [Bucket.VerifyUpload] before the file is used.
//
// # Deleting a clone
//
// [Bucket.DeleteClone] removes every object of the clone, including every version and
// delete marker on versioned buckets and every unfinished multipart upload, and then
// lists the prefix again to verify that nothing is left.
package objectstore
