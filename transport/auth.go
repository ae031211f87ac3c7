package transport

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/raftcache/raftcache/auth"
)

type principalKey struct{}

// PrincipalFrom returns the caller a request was authenticated as.
func PrincipalFrom(ctx context.Context) (auth.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(auth.Principal)
	return p, ok
}

// require wraps h so that it runs only for callers holding role. With no
// token file configured (Config.Auth nil) the API is open.
func (s *Server) require(role auth.Role, h http.HandlerFunc) http.HandlerFunc {
	if s.cfg.Auth == nil || role == auth.RoleNone {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="raftcache"`)
			writeError(w, &requestError{http.StatusUnauthorized, "unauthorized", "a bearer token is required"})
			return
		}
		p, found := s.cfg.Auth.Lookup(presented)
		if !found {
			w.Header().Set("WWW-Authenticate", `Bearer realm="raftcache", error="invalid_token"`)
			writeError(w, &requestError{http.StatusUnauthorized, "unauthorized", "unknown token"})
			return
		}
		if p.Role < role {
			writeError(w, &requestError{http.StatusForbidden, "forbidden",
				fmt.Sprintf("token %s has role %s; this needs %s", p.Name, p.Role, role)})
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	}
}
