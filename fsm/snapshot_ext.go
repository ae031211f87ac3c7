package fsm

import (
	"bufio"
	"errors"
	"hash"
	"io"
)

// The state added for scripts and WATCH (the script cache, the change log)
// is written after the v1 stream's last section, behind its own magic:
// a binary that predates it stops reading before it (Restore ignores what
// follows the request ids), and this one restores a stream without it as
// an empty cache and change log.
//
// TODO(merge with level): move these into sections of the v2 snapshot
// (appendScripts/readScripts, appendChangeLog/readChangeLog) and drop
// this trailer.

var extMagic = [4]byte{'R', 'C', 'X', 1}

func appendSnapshotExt(dst []byte, s *state) []byte {
	dst = append(dst, extMagic[:]...)
	dst = appendScripts(dst, &s.scripts)
	return appendChangeLog(dst, &s.changes)
}

func readSnapshotExt(r *bufio.Reader, s *state) error {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // written before scripts and WATCH existed
		}
		return err
	}
	if magic != extMagic {
		return errors.New("unknown trailer")
	}
	if err := readScripts(r, &s.scripts); err != nil {
		return err
	}
	return readChangeLog(r, &s.changes)
}

// digestExt adds the script cache and the change log to a state's digest.
func digestExt(h hash.Hash, s *state) {
	s.scripts.digest(h)
	s.changes.digest(h)
}
