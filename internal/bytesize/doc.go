// Package bytesize reads and writes byte counts as people write them: 2GiB,
// 512MiB, 1.5GB, 4096. Flags that take sizes (weir run --memory, the
// coordinator's --max-spec-size) parse with it, and messages that state a
// size format with it.
package bytesize
