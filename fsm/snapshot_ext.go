package fsm

import "hash"

// The state added for scripts and WATCH (the script cache, the change log)
// travels in sections 5 and 6 of the v2 snapshot. A cluster below feature
// level 2 writes v1 snapshots without them; it cannot hold either, since
// scripts and watched transactions run only in OpExec entries, which are
// proposed from level 2 on.

// digestExt adds the script cache and the change log to a state's digest.
func digestExt(h hash.Hash, s *state) {
	s.scripts.digest(h)
	s.changes.digest(h)
	if s.notify != 0 { // digests of states without flags stay as they were
		h.Write(appendNotify([]byte("notify"), s.notify))
	}
}
