package resp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"os"
	"time"

	"github.com/tidwall/redcon"
)

// Waking a connection in redcon's loop. A connection that is the REDIRECT
// target of another's CLIENT TRACKING (and subscribed to nothing, or it
// would have left the loop already) receives pushes it has not asked for
// on its own connection. Redis writes them at once. redcon lets a
// connection leave its loop (Detach, for serveDetached, which writes
// pushes) only from that connection's own handler, which runs when a
// command arrives; an idle target would get its pushes only with its next
// command.
//
// So when the hub queues the first push for such a connection, it pokes
// the connection (poke): a read deadline in the past ends the read redcon
// is blocked in. limitConn.fill, seeing the timeout it was poked for,
// clears the deadline and hands redcon a wake command of the server's own
// (wakeName and a secret no client can guess), but only between commands
// (inside one, the command's own handling will do: a client that stalls
// in the middle of a command gets its pushes after it). The handler skips
// the wake command (isWake) and, finding pushes queued, detaches the
// connection as after any command. A client that sends the name without
// the secret gets the unknown-command error.

const wakeName = "raftcache.wake"

// newWake returns the wake command's secret and the command itself.
func newWake() (secret, cmd []byte) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("resp: no randomness for the wake secret: " + err.Error())
	}
	secret = []byte(hex.EncodeToString(b))
	cmd = redcon.AppendBulk(redcon.AppendBulkString(redcon.AppendArray(nil, 2), wakeName), secret)
	return secret, cmd
}

// isWake says whether args is the server's wake command.
func (s *Server) isWake(args [][]byte) bool {
	return len(args) == 2 && len(args[0]) == len(wakeName) && string(args[0]) == wakeName &&
		subtle.ConstantTimeCompare(args[1], s.wakeSecret) == 1
}

// poke wakes the connection's reader, if it is still in redcon's loop
// and logged in (a connection that has not authenticated would be cut on
// waking: serveDetached serves pushes only to one that may read them; its
// AUTH, a command, detaches it anyway). It is called with the hub's lock
// held and does not block.
func (c *limitConn) poke() {
	if c.wakeable.Load() && (!c.needAuth || c.authed.Load()) && c.poked.CompareAndSwap(false, true) {
		_ = c.raw.SetReadDeadline(time.Unix(1, 0))
	}
}

// arm makes the connection wakeable once its first command has run and
// left it in redcon's loop (so a wake never cuts a TLS handshake short,
// nor comes before a relay's RAFTCACHE.FORWARDED, sent with its first
// write), and wakes it at once if a push came meanwhile: the hub wakes
// only when its queue stops being empty, and a push that saw it not yet
// wakeable did not.
func (c *limitConn) arm(pending func() bool) {
	if c.wakeCmd == nil || c.wakeable.Load() {
		return
	}
	c.wakeable.Store(true)
	if pending() {
		c.poke()
	}
}

// woken says whether a read that failed with err was cut short by poke;
// it then clears the deadline, so that reads block again. It sets the raw
// connection's read deadline behind internal/deadline.Lazy's back, which
// is sound only because nothing else sets a read deadline on a client
// connection (Lazy's are zero, so it passes the timeout up): a read
// deadline set through Lazy would need poke and woken to go through it.
func (c *limitConn) woken(err error) bool {
	if err == nil || !c.poked.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	_ = c.raw.SetReadDeadline(time.Time{})
	c.poked.Store(false)
	return true
}

// leaveLoop is called when the connection is detached: pushes are then
// written by serveDetached, which waits for them itself.
func (c *limitConn) leaveLoop() { c.wakeable.Store(false) }
