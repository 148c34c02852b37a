// Package auth holds the users, passwords and roles of peercache's client
// doors (the HTTP API and the Redis protocol). It is a leaf package: it knows
// nothing of routes or commands; a door asks it who a client is ([Store.Check],
// [Store.FromRequest]) and decides itself which [Role] an operation needs and
// which status or error string a refusal gets.
//
// # Sources
//
// A [Store] is loaded ([Load]) from one of two files:
//
//   - a password file (--password-file): its first line is the password of the
//     user "default", who has the admin role; the single-password case, like
//     Redis's requirepass;
//   - a users file (--users-file): one user per line, "NAME ROLE HASH", where
//     HASH is "sha256:" and the 64 hex digits of the SHA-256 of the password
//     (for long random passwords; see [HashPassword] and [GeneratePassword]),
//     or a bcrypt hash ("$2a$", "$2b$" or "$2y$"; for passwords people choose).
//
// With neither file the store is disabled ([Store.Enabled] is false): the
// doors then ask for no credentials at all. Only hashes are kept in memory;
// error messages name the file and the line but never a password or a hash.
//
// # Costs and timing
//
// Wrong passwords and unknown users get the same error, [ErrWrongPass], after
// the same work (hash comparisons are constant-time, and an unknown user is
// checked against a dummy hash of the same kind as the slowest user's), so a
// client cannot tell which user names exist. bcrypt verifications are slow on
// purpose: a store remembers the last successful ones (keyed by a SHA-256 of
// user and password, bounded in number, forgotten on [Store.Reload]) so that
// many connections authenticating with the same password cost one bcrypt,
// and it runs at most a few bcrypt verifications at once, so a flood of wrong
// passwords queues instead of taking every core.
//
// The package has no package-level mutable state.
package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Role is what a user may do. Roles are ordered: each one allows everything
// the roles below it allow.
type Role int

// The roles, weakest first.
const (
	// RoleNone allows nothing; it is the role of a failed check.
	RoleNone Role = iota
	// RoleRead may read keys and the cluster's status.
	RoleRead
	// RoleWrite may also write and delete keys.
	RoleWrite
	// RoleAdmin may also change the node or the cluster (leave, mode, admin
	// commands).
	RoleAdmin
)

// Allows reports whether a user with role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r >= need }

// String returns the role's name as written in a users file ("read",
// "write", "admin"), "none" for RoleNone.
func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleRead:
		return "read"
	case RoleWrite:
		return "write"
	case RoleAdmin:
		return "admin"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

// ParseRole parses a role name as written in a users file: "read", "write"
// or "admin" (case-insensitive). Anything else is an error wrapping
// [ErrBadRole].
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(s) {
	case "read":
		return RoleRead, nil
	case "write":
		return RoleWrite, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("%w %q: want read, write or admin", ErrBadRole, s)
}

// Errors of checks. Doors match them with errors.Is.
var (
	// ErrWrongPass is the answer to a wrong password, an unknown user and a
	// malformed credential alike (RESP: -WRONGPASS; HTTP: 401).
	ErrWrongPass = errors.New("auth: wrong user name or password")
	// ErrNoCredentials says a request carried no credentials at all (RESP:
	// -NOAUTH; HTTP: 401 with [WWWAuthenticate]).
	ErrNoCredentials = errors.New("auth: no credentials")
	// ErrDisabled is returned by checks on a store that has no users (see
	// [Store.Enabled]); Redis answers AUTH in that case with "-ERR AUTH
	// <password> called without any password configured for the default
	// user".
	ErrDisabled = errors.New("auth: no users or password configured")
)

// Errors of loading. A [FileError] wraps one of them.
var (
	// ErrConfig is a [Config] that names both files.
	ErrConfig = errors.New("auth: give a users file or a password file, not both")
	// ErrBadLine is a users-file line that is not "NAME ROLE HASH".
	ErrBadLine = errors.New("want NAME ROLE HASH")
	// ErrBadName is a user name outside [A-Za-z0-9._-]{1,64}.
	ErrBadName = errors.New("invalid user name (want 1 to 64 of A-Z a-z 0-9 . _ -)")
	// ErrBadRole is a role other than read, write and admin.
	ErrBadRole = errors.New("invalid role")
	// ErrBadHash is a password hash that is neither "sha256:<64 hex digits>"
	// nor a bcrypt hash.
	ErrBadHash = errors.New("invalid password hash (want sha256:<64 hex digits> or a bcrypt hash $2a$, $2b$ or $2y$)")
	// ErrDuplicate is a user name given twice.
	ErrDuplicate = errors.New("duplicate user")
	// ErrNoUsers is a users file without any user.
	ErrNoUsers = errors.New("no user in it")
	// ErrEmptyPassword is a password file whose first line is empty.
	ErrEmptyPassword = errors.New("empty password (the first line is the password)")
)

// FileError is an error in a users or password file. Its message names the
// file and, when it is about one line, the line number; it never contains a
// password or a hash.
type FileError struct {
	// File is the path as given in the [Config].
	File string
	// Line is the 1-based line number, 0 when the error is about the whole
	// file (it cannot be read, it has no user).
	Line int
	// Err is the reason: one of the Err* values of this package, possibly
	// wrapped, or an error from reading the file.
	Err error
}

// Error names the file (and line) and the reason.
func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("auth: %s line %d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("auth: %s: %v", e.File, e.Err)
}

// Unwrap returns Err.
func (e *FileError) Unwrap() error { return e.Err }
