package resp

import (
	"strings"

	"github.com/raftcache/raftcache/auth"
)

// Authentication on the Redis port. With a token file (Config.Auth), a
// connection must send AUTH [user] token, or HELLO proto AUTH user token,
// before anything but QUIT and RESET; the user name is ignored, the token
// decides the role, as a bearer token does on the HTTP API. Reads need the
// read role and writes the write role; connection commands (PING, SELECT,
// MULTI...) only need a token. Errors are Redis's own: NOAUTH, WRONGPASS,
// NOPERM, so clients report them as they would against Redis.

const (
	msgNoAuth    = "NOAUTH Authentication required."
	msgWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	msgNoPass    = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
)

// noAuth are the commands a connection may send before authenticating.
var noAuth = map[string]bool{"auth": true, "hello": true, "quit": true, "reset": true}

// infoRead are connection commands that reveal server state: they need the
// read role, like /v1/stats on the HTTP API.
// Subscribing reads what others write, like a read.
var infoRead = map[string]bool{"info": true, "client": true, "config": true,
	"subscribe": true, "psubscribe": true, "ssubscribe": true, "pubsub": true}

// role is what a command run as k requires of the caller (a script that
// cannot write needs only the read role).
func (c *command) role(k kind) auth.Role {
	switch {
	case k == kindWrite, c.name == relayPublishName:
		return auth.RoleWrite
	case k == kindRead, infoRead[c.name]:
		return auth.RoleRead
	}
	return auth.RoleNone
}

// authorize returns the error to answer instead of running the command
// name (cmd nil when unknown), or "" to run it.
func (s *Server) authorize(cl *client, name string, cmd *command, k kind) string {
	if s.cfg.Auth == nil || noAuth[name] {
		return ""
	}
	if gen := s.cfg.Auth.Generation(); cl.authed && cl.gen != gen { // the token file was reloaded
		p, ok := s.cfg.Auth.Lookup(cl.token) // read after gen: a reload in between shows next time
		cl.principal, cl.authed, cl.gen = p, ok, gen
	}
	if !cl.authed {
		return msgNoAuth
	}
	if cmd != nil && cl.principal.Role < cmd.role(k) {
		return "NOPERM User " + cl.principal.Name + " has no permissions to run the '" + name +
			"' command (role " + cl.principal.Role.String() + ", needs " + cmd.role(k).String() + ")"
	}
	return ""
}

// login checks a token presented by AUTH or HELLO and, if it is known,
// authenticates the connection; it returns the error to answer, or "".
// A failed attempt leaves the connection as it was.
func (s *Server) login(cl *client, token []byte) string {
	if s.cfg.Auth == nil {
		return msgNoPass
	}
	gen := s.cfg.Auth.Generation() // before the lookup: a reload in between shows at the next command
	p, ok := s.cfg.Auth.Lookup(string(token))
	if !ok {
		s.authFailures.Add(1)
		s.logger.Debug("RESP authentication failed", "client", cl.addr)
		return msgWrongPass
	}
	cl.authed, cl.principal, cl.token, cl.gen = true, p, string(token), gen
	if cl.limits != nil {
		cl.limits.login()
	}
	return ""
}

// logout is RESET's: back to an unauthenticated connection.
func (s *Server) logout(cl *client) {
	if s.cfg.Auth != nil {
		cl.authed, cl.principal, cl.token = false, auth.Principal{}, ""
		if cl.limits != nil { // pre-auth limits and a new deadline to authenticate again
			cl.limits.logout()
		}
	}
}

func cmdAuth(s *Server, cl *client, args [][]byte) {
	if len(args) > 3 {
		cl.w.error("ERR syntax error")
		return
	}
	if msg := s.login(cl, args[len(args)-1]); msg != "" {
		cl.w.error(msg)
		return
	}
	cl.w.ok()
}

// helloAuth handles HELLO's AUTH option before anything else of HELLO
// takes effect; it returns false when HELLO must stop (the error written).
func helloAuth(s *Server, cl *client, args [][]byte) bool {
	for i := 2; i+2 < len(args); i++ {
		if strings.EqualFold(string(args[i]), "auth") {
			if msg := s.login(cl, args[i+2]); msg != "" {
				cl.w.error(msg)
				return false
			}
			return true
		}
	}
	if s.cfg.Auth != nil && !cl.authed {
		cl.w.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return false
	}
	return true
}
