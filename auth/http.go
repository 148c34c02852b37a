package auth

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// WWWAuthenticate is the WWW-Authenticate header value for a 401 reply.
const WWWAuthenticate = `Basic realm="peercache", charset="UTF-8"`

// Principal is an authenticated client.
type Principal struct {
	// User is the user's name ([DefaultUser] when none was given).
	User string
	// Role is what the user may do.
	Role Role
}

// FromRequest authenticates an HTTP request by its Authorization header:
//
//   - "Basic " and base64 of "USER:PASSWORD" (an empty USER is
//     [DefaultUser]);
//   - "Bearer TOKEN", where TOKEN is "USER:PASSWORD" or the password of
//     [DefaultUser] (a TOKEN with a colon that does not check as
//     USER:PASSWORD is tried whole as the default user's password).
//
// No Authorization header gives [ErrNoCredentials]; a wrong or unknown user
// or password, another scheme, a malformed header or more than one
// Authorization header gives [ErrWrongPass]; a disabled store gives
// [ErrDisabled]. Which role a route needs is the caller's business.
func (s *Store) FromRequest(r *http.Request) (Principal, error) {
	if !s.Enabled() {
		return Principal{}, ErrDisabled
	}
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return Principal{}, ErrNoCredentials
	case 1:
	default:
		return Principal{}, ErrWrongPass
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok {
		return Principal{}, ErrWrongPass
	}
	cred = strings.TrimLeft(cred, " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		dec, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return Principal{}, ErrWrongPass
		}
		name, password, ok := strings.Cut(string(dec), ":")
		if !ok {
			return Principal{}, ErrWrongPass
		}
		return s.principal(name, password)
	case strings.EqualFold(scheme, "Bearer"):
		if cred == "" {
			return Principal{}, ErrWrongPass
		}
		if name, password, ok := strings.Cut(cred, ":"); ok && ValidName(name) {
			if p, err := s.principal(name, password); err == nil {
				return p, nil
			}
		}
		return s.principal(DefaultUser, cred)
	default:
		return Principal{}, ErrWrongPass
	}
}

// Authenticate is [Store.Check] returning a [Principal].
func (s *Store) Authenticate(name, password string) (Principal, error) {
	return s.principal(name, password)
}

func (s *Store) principal(name, password string) (Principal, error) {
	role, err := s.Check(name, password)
	if err != nil {
		return Principal{}, err
	}
	if name == "" {
		name = DefaultUser
	}
	return Principal{User: name, Role: role}, nil
}
