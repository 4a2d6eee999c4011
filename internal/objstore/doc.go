// Package objstore owns weir's object store: the durable, shared place where
// job binaries, checkpoints and savepoints live. It wraps a
// gocloud.dev/blob bucket so that the same code runs against a local
// directory (file://), memory (mem://, for tests) and S3 (s3://).
//
// Job binaries are content addressed under "binaries/<sha256 hex>"
// (storelayout.Binary, like every other key). A binary is only ever visible
// under its key once its content has been verified to hash to that key, so
// a reader that finds the key may trust the content (workers verify again
// anyway, because the store is shared and outlives any one process).
package objstore
