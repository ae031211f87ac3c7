//go:build !linux

package pebblestore

// startWriteback has no portable equivalent; the fill's zeros are written
// back with the next fdatasync instead.
func startWriteback(fd uintptr, off, n int64) {}
