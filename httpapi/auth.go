package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/kv"
)

// What each HTTP route needs, and the checks every request passes before
// its handler (allow): cross-site protection for the state-changing
// methods, then authentication and the role, when Config.Auth is enabled.
//
//	route                     method                  role
//	/v1/keys/{key}            GET, HEAD               read
//	/v1/keys/{key}            PUT, DELETE             write
//	/v1/cluster, /v1/status,  any                     read
//	/v1/ring, dashboard
//	/v1/mode                  GET, HEAD               read
//	/v1/mode                  PUT, POST               admin
//	/v1/leave                 POST                    admin
//	/v1/keys/{key}/{op}       POST                    write
//	/v1/warm                  POST                    write
//	/v1/mget                  POST                    read
//	/v1/mset                  POST                    write
//	/v1/scan                  GET, HEAD               read
//	/metrics                  GET                     read (none with PublicMetrics)
//	/livez, /readyz           GET                     none (probes)

// roleFor returns what a request needs on a route: read for the safe
// methods, else the route's write role.
func roleFor(write auth.Role) func(*http.Request) auth.Role {
	return func(r *http.Request) auth.Role {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return auth.RoleRead
		}
		return write
	}
}

// always is a role requirement that does not depend on the method.
func always(role auth.Role) func(*http.Request) auth.Role {
	return func(*http.Request) auth.Role { return role }
}

// allow wraps h with the door's checks. admin marks the routes that take
// no value from a browser form (they refuse the content types a
// cross-site form can send without a preflight, whatever its origin).
func (s *Server) allow(need func(*http.Request) auth.Role, admin bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !safeMethod(r.Method) {
			if err := s.csrf.Check(r); err != nil {
				writeError(w, kv.Errorf(http.StatusForbidden, "cross-site request refused: state-changing requests must come from this node's own origin or from a non-browser client"))
				return
			}
			if admin && formContentType(r.Header.Get("Content-Type")) {
				writeError(w, kv.Errorf(http.StatusUnsupportedMediaType, "this route does not take form content types (%s); send JSON or no body", r.Header.Get("Content-Type")))
				return
			}
		}
		role := need(r)
		if role == auth.RoleNone || !s.cfg.Auth.Enabled() {
			h(w, r)
			return
		}
		p, err := s.cfg.Auth.FromRequest(r)
		switch {
		case errors.Is(err, auth.ErrNoCredentials):
			w.Header().Set("WWW-Authenticate", auth.WWWAuthenticate)
			writeError(w, kv.Errorf(http.StatusUnauthorized, "authentication required: send Authorization: Bearer <password> or Basic credentials"))
			return
		case err != nil:
			s.metrics.authFailures.Inc()
			w.Header().Set("WWW-Authenticate", auth.WWWAuthenticate)
			writeError(w, kv.Errorf(http.StatusUnauthorized, "wrong user name or password"))
			return
		case !p.Role.Allows(role):
			writeError(w, kv.Errorf(http.StatusForbidden, "user %s (role %s) may not %s %s: it needs role %s", p.User, p.Role, r.Method, r.URL.Path, role))
			return
		}
		h(w, r)
	}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// formContentType reports the content types an HTML form (or a "simple"
// cross-site fetch) can send without a CORS preflight.
func formContentType(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true // unparsable: refuse rather than guess
	}
	switch strings.ToLower(mt) {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}
