package resp

import "github.com/raftcache/raftcache/fsm"

// The blocking tests use RAFTCACHE.TESTBPOP (a blocking pop over strings)
// so that they run without lists; the command table of this test binary
// gets it whichever init runs first.
func init() {
	fsm.RegisterTestCommands()
	for _, name := range []string{"raftcache.testbpop"} {
		commands[name] = engineCommand(fsm.Lookup([]byte(name)))
	}
}
