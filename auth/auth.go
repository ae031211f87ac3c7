// Package auth holds the bearer tokens of a token file and the roles they
// grant. It is shared by the two fronts (the HTTP API in transport and
// the Redis protocol in resp) so that one file, reloaded once on SIGHUP,
// decides who may do what on every port. It imports nothing of ours.
package auth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// Role is what a token may do. Each role includes the ones below it.
type Role int

// Roles, weakest first.
const (
	RoleNone  Role = iota // probes only (/livez, /readyz); on RESP: AUTH, HELLO, QUIT
	RoleRead              // reads, key listings, stats, cluster view, metrics
	RoleWrite             // writes, counters, TTLs, batches, invalidation
	RoleAdmin             // membership, leadership transfer, backup and restore
)

var roleNames = [...]string{RoleNone: "none", RoleRead: "read", RoleWrite: "write", RoleAdmin: "admin"}

func (r Role) String() string {
	if r >= 0 && int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "none"
}

func parseRole(s string) (Role, bool) {
	for r, name := range roleNames {
		if name == s && Role(r) != RoleNone {
			return Role(r), true
		}
	}
	return RoleNone, false
}

// MinTokenLen is the shortest token a token file may hold: short tokens
// can be guessed through the network.
const MinTokenLen = 16

// Principal is an authenticated caller.
type Principal struct {
	Name string // the token's name in the file, for logs and errors
	Role Role
}

// Tokens holds the tokens of a token file. With no Tokens configured a
// front is open (for a private network or loopback only); with one, every
// request but the probes needs a token with a sufficient role.
type Tokens struct {
	path   string
	tokens atomic.Pointer[[]token]
	gen    atomic.Uint64
}

type token struct {
	hash [32]byte // sha256 of the token: equal length for constant-time compare
	p    Principal
}

// Load reads a token file: one token per line as `ROLE TOKEN [NAME]`,
// ROLE being read, write or admin; blank lines and lines starting with #
// are ignored.
func Load(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	return t, t.Reload()
}

// Reload re-reads the token file; on error the old tokens stay in force.
func (t *Tokens) Reload() error {
	f, err := os.Open(t.path)
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	defer f.Close()
	var toks []token
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		role, ok := parseRole(fields[0])
		if !ok || len(fields) < 2 || len(fields) > 3 {
			return fmt.Errorf("token file %s line %d: want `read|write|admin TOKEN [NAME]`", t.path, line)
		}
		if len(fields[1]) < MinTokenLen {
			return fmt.Errorf("token file %s line %d: tokens must be at least %d characters", t.path, line, MinTokenLen)
		}
		tok := token{hash: sha256.Sum256([]byte(fields[1])), p: Principal{Role: role, Name: fmt.Sprintf("line %d", line)}}
		if len(fields) == 3 {
			tok.p.Name = fields[2]
		}
		toks = append(toks, tok)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	t.tokens.Store(&toks)
	t.gen.Add(1)
	return nil
}

// Generation changes with every successful Reload. A front that keeps a
// caller authenticated across requests (a Redis connection after AUTH)
// looks its token up again when the generation has moved, so a token
// removed from the file stops working at once there too.
func (t *Tokens) Generation() uint64 { return t.gen.Load() }

// Lookup finds who a presented token belongs to. It compares against
// every token, in constant time each, so timing says nothing about which
// (or whether one) matched.
func (t *Tokens) Lookup(presented string) (Principal, bool) {
	h := sha256.Sum256([]byte(presented))
	var p Principal
	found := false
	for _, tok := range *t.tokens.Load() {
		if subtle.ConstantTimeCompare(h[:], tok.hash[:]) == 1 {
			p, found = tok.p, true
		}
	}
	return p, found
}
