//go:build !unix

package node

import (
	"errors"
	"os"
)

// ErrLocked: another process holds the data directory (never reported
// where flock does not exist).
var ErrLocked = errors.New("data directory in use by another raftcache process")

// lockDir does nothing where flock does not exist.
func lockDir(string) (*os.File, error) { return nil, nil }
