package fsm

import (
	"bufio"
	"io"
)

// WriteBackup streams the current state in the snapshot format, as a
// backup for another cluster (or this one, later) to restore. The stream
// records index 0: a backup has no place in the log of the cluster that
// restores it, and an FSM must never claim an index it has not applied.
// Its format follows the cluster level, as snapshots do, so a backup of a
// cluster in the middle of an upgrade restores into the old version too.
func (f *FSM) WriteBackup(w io.Writer) error {
	if err := f.Poisoned(); err != nil {
		return err
	}
	s := f.snapshot()
	backup := *s.root
	backup.index = 0
	s.root = &backup
	return s.write(w)
}

// BackupItem is one key of a backup.
type BackupItem struct {
	Key []byte
	// Type is the key's type. Value is a string's bytes, or a
	// collection's encoding (restored with rc.restore: RCRestore).
	Type     ValueType
	Value    []byte
	ExpireAt int64
}

// ReadBackup parses a backup (or snapshot) stream and calls fn for every
// item in key order. Parsing finishes before the first call, so a corrupt
// stream calls fn for nothing.
func ReadBackup(r io.Reader, fn func(BackupItem) error) error {
	s, err := readSnapshot(bufio.NewReaderSize(r, 256<<10), snapshotFormat(FeatureLevel, FeatureLevel))
	if err != nil {
		return err
	}
	var ferr error
	s.root.tree.Ascend(func(it *item) bool {
		b := BackupItem{Key: []byte(it.key), Type: it.kind(), Value: it.value, ExpireAt: it.expireAt}
		if it.obj != nil {
			b.Value = it.obj.appendTo(nil)
		}
		ferr = fn(b)
		return ferr == nil
	})
	return ferr
}
