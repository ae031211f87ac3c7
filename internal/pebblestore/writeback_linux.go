package pebblestore

import "golang.org/x/sys/unix"

// startWriteback asks the kernel to begin writing a file's range to disk
// now, without waiting for it (sync_file_range with WRITE alone): a hint
// that promises nothing, and whose error changes nothing.
func startWriteback(fd uintptr, off, n int64) {
	_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
}
