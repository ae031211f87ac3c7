//go:build unix

package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile is held (flock, exclusive) by the process that uses a data
// directory: a running node, or `raftcache recover`, which must never
// rewrite a directory a node is using. The kernel drops the lock when the
// process dies, so a crash leaves nothing to clean up.
const lockFile = "lock"

// ErrLocked: another process (a running node, or recover) holds the data
// directory.
var ErrLocked = errors.New("data directory in use by another raftcache process")

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (its %s file is locked); stop that node first", ErrLocked, dir, lockFile)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return f, nil
}
