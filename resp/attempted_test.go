package resp

import (
	"strings"
	"testing"
)

// failAttempted: "not applied" (TRYAGAIN) is said only of what no attempt
// may have carried out; a write an earlier attempt sent to a former
// leader is UNKNOWN whatever the last attempt met, and a read keeps the
// error it met.
func TestFailAttempted(t *testing.T) {
	noLeader := replyError(msgNoLeader)
	for _, tc := range []struct {
		name string
		it   *item
		want string
	}{
		{"write never sent", &item{cmd: commands["set"], kind: kindWrite, name: "set"}, "-TRYAGAIN"},
		{"write sent before", &item{cmd: commands["set"], kind: kindWrite, name: "set", sent: 1}, "-UNKNOWN"},
		{"publish sent before", &item{name: "publish", reqID: []byte("id"), sent: 1}, "-UNKNOWN"},
		{"read sent before", &item{cmd: commands["get"], kind: kindRead, name: "get", sent: 1}, "-TRYAGAIN"},
	} {
		cl := &client{w: writer{proto: 2}}
		cl.failAttempted(tc.it, noLeader)
		if got := string(cl.w.b); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %s...", tc.name, got, tc.want)
		}
	}
}
