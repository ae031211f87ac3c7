package transport

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
)

// Role is what a bearer token may do. Each role includes the ones below it.
type Role int

// Roles, weakest first.
const (
	RoleNone  Role = iota // probes only (/livez, /readyz)
	RoleRead              // reads, key listings, stats, cluster view, metrics
	RoleWrite             // writes, counters, TTLs, batches, invalidation
	RoleAdmin             // membership, leadership transfer, backup and restore
)

var roleNames = map[string]Role{"read": RoleRead, "write": RoleWrite, "admin": RoleAdmin}

func (r Role) String() string {
	for name, v := range roleNames {
		if v == r {
			return name
		}
	}
	return "none"
}

// Auth holds the tokens of a token file. With no Auth configured the API is
// open (for a private network or loopback only); with one, every request
// but the probes needs `Authorization: Bearer <token>` with a sufficient
// role. The file is re-read by Reload (the node calls it on SIGHUP).
type Auth struct {
	path   string
	tokens atomic.Pointer[[]token]
}

type token struct {
	hash [32]byte // sha256 of the token: equal length for constant-time compare
	role Role
	name string
}

// LoadAuth reads a token file: one token per line as `ROLE TOKEN [NAME]`,
// ROLE being read, write or admin; blank lines and lines starting with #
// are ignored.
func LoadAuth(path string) (*Auth, error) {
	a := &Auth{path: path}
	return a, a.Reload()
}

// Reload re-reads the token file; on error the old tokens stay in force.
func (a *Auth) Reload() error {
	f, err := os.Open(a.path)
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
		role, ok := roleNames[fields[0]]
		if !ok || len(fields) < 2 || len(fields) > 3 {
			return fmt.Errorf("token file %s line %d: want `read|write|admin TOKEN [NAME]`", a.path, line)
		}
		if len(fields[1]) < 16 {
			return fmt.Errorf("token file %s line %d: tokens must be at least 16 characters", a.path, line)
		}
		t := token{hash: sha256.Sum256([]byte(fields[1])), role: role, name: fmt.Sprintf("line %d", line)}
		if len(fields) == 3 {
			t.name = fields[2]
		}
		toks = append(toks, t)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	a.tokens.Store(&toks)
	return nil
}

// lookup finds the role of a presented token. It compares against every
// token, in constant time each, so timing says nothing about which (or
// whether one) matched.
func (a *Auth) lookup(presented string) (Role, string, bool) {
	h := sha256.Sum256([]byte(presented))
	role, name, found := RoleNone, "", false
	for _, t := range *a.tokens.Load() {
		if subtle.ConstantTimeCompare(h[:], t.hash[:]) == 1 {
			role, name, found = t.role, t.name, true
		}
	}
	return role, name, found
}

type principalKey struct{}

// Principal is the authenticated caller of a request.
type Principal struct {
	Name string
	Role Role
}

// PrincipalFrom returns the caller a request was authenticated as.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// require wraps h so that it runs only for callers holding role.
func (s *Server) require(role Role, h http.HandlerFunc) http.HandlerFunc {
	if s.cfg.Auth == nil || role == RoleNone {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="raftcache"`)
			writeError(w, &requestError{http.StatusUnauthorized, "unauthorized", "a bearer token is required"})
			return
		}
		got, name, found := s.cfg.Auth.lookup(presented)
		if !found {
			w.Header().Set("WWW-Authenticate", `Bearer realm="raftcache", error="invalid_token"`)
			writeError(w, &requestError{http.StatusUnauthorized, "unauthorized", "unknown token"})
			return
		}
		if got < role {
			writeError(w, &requestError{http.StatusForbidden, "forbidden",
				fmt.Sprintf("token %s has role %s; this needs %s", name, got, role)})
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, Principal{Name: name, Role: got})))
	}
}
