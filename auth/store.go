package auth

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// DefaultUser is the user of a password file, and the user a check without
// a user name (Redis's "AUTH password", a bearer token without "USER:") is
// for.
const DefaultUser = "default"

// Defaults of [Config].
const (
	DefaultCacheSize         = 1024
	DefaultBcryptConcurrency = 2
)

// Limits of the files, so that a wrong path (a device, a log file) fails
// instead of filling memory.
const (
	maxUsersFile    = 16 << 20
	maxPasswordFile = 64 << 10
	maxLine         = 4 << 10
	// highBcryptCost is the cost above which Load warns: each new login
	// then takes a quarter of a second or more of CPU.
	highBcryptCost = 12
)

// Config says where a [Store] reads its users from. At most one of the two
// files may be given; with neither the store is disabled.
type Config struct {
	// UsersFile is a users file (--users-file): "NAME ROLE HASH" lines.
	UsersFile string
	// PasswordFile is a password file (--password-file): its first line is
	// the password of user "default", an admin.
	PasswordFile string
	// CacheSize bounds how many successful bcrypt verifications the store
	// remembers (0: DefaultCacheSize; negative: none).
	CacheSize int
	// BcryptConcurrency bounds how many bcrypt verifications run at once
	// (0 or less: DefaultBcryptConcurrency); more wait their turn.
	BcryptConcurrency int
}

// Store is a set of users loaded from a [Config]. It is safe for concurrent
// use; [Store.Reload] swaps the users atomically. A nil *Store is a disabled
// one.
type Store struct {
	cfg     Config
	sem     chan struct{} // bcrypt slots
	bcrypts atomic.Int64  // bcrypt verifications run (for tests)

	mu  sync.Mutex // serializes Reload
	set atomic.Pointer[userSet]
}

// userSet is one load of the files: immutable but for its cache, which goes
// with it when a reload replaces it.
type userSet struct {
	users    map[string]*user
	dummy    *user // checked for unknown names: same work, never matches
	warnings []string

	cacheMax int
	cacheMu  sync.Mutex
	cache    map[[sha256.Size]byte]struct{}
}

type user struct {
	name   string
	role   Role
	sum    []byte // SHA-256 of the password, or nil
	bcrypt []byte // bcrypt hash, or nil
}

// Load reads the users that cfg names. With neither file it returns a
// disabled store ([Store.Enabled] false) and no error; with both it returns
// [ErrConfig]. A file that cannot be read or parsed gives a [*FileError].
func Load(cfg Config) (*Store, error) {
	if cfg.UsersFile != "" && cfg.PasswordFile != "" {
		return nil, ErrConfig
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.BcryptConcurrency <= 0 {
		cfg.BcryptConcurrency = DefaultBcryptConcurrency
	}
	s := &Store{cfg: cfg, sem: make(chan struct{}, cfg.BcryptConcurrency)}
	if cfg.UsersFile == "" && cfg.PasswordFile == "" {
		return s, nil
	}
	set, err := s.load()
	if err != nil {
		return nil, err
	}
	s.set.Store(set)
	return s, nil
}

// Enabled reports whether the store has users. A disabled store answers
// every check with [ErrDisabled]: the doors then skip authentication and
// treat every client as an admin, as Redis does without requirepass.
func (s *Store) Enabled() bool { return s != nil && s.set.Load() != nil }

// Warnings returns what the last successful load found questionable but
// accepted, each a sentence naming the file: a password file that group or
// others may read, a users file that others may read, a bcrypt cost that
// makes logins slow. The caller logs them.
func (s *Store) Warnings() []string {
	if !s.Enabled() {
		return nil
	}
	return append([]string(nil), s.set.Load().warnings...)
}

// Reload reads the files again (on SIGHUP) and, if they are good, replaces
// the users at once, forgetting remembered verifications. On error the old
// users stay in force and the error is returned. Reload of a disabled store
// does nothing.
func (s *Store) Reload() error {
	if !s.Enabled() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	set, err := s.load()
	if err != nil {
		return err
	}
	s.set.Store(set)
	return nil
}

// Check returns the role of user name if password is theirs. The empty name
// is [DefaultUser]. An unknown user and a wrong password both get
// [ErrWrongPass], after the same work; a disabled store gets [ErrDisabled].
// A check may wait for a bcrypt slot (see [Config.BcryptConcurrency]).
func (s *Store) Check(name, password string) (Role, error) {
	if !s.Enabled() {
		return RoleNone, ErrDisabled
	}
	if name == "" {
		name = DefaultUser
	}
	set := s.set.Load()
	u, known := set.users[name]
	if !known {
		u = set.dummy
	}
	if !s.verify(set, u, name, password) || !known {
		return RoleNone, ErrWrongPass
	}
	return u.role, nil
}

// verify compares password with u's hash in constant time (for a given
// password length), through the cache for bcrypt.
func (s *Store) verify(set *userSet, u *user, name, password string) bool {
	if u.sum != nil {
		sum := sha256.Sum256([]byte(password))
		return subtle.ConstantTimeCompare(sum[:], u.sum) == 1
	}
	if len(password) > 72 {
		// bcrypt would look at the first 72 bytes only: refuse rather
		// than accept any password with the same beginning.
		return false
	}
	key := cacheKey(name, password)
	if set.cached(key) {
		return true
	}
	s.sem <- struct{}{}
	if set.cached(key) { // verified while this one waited for a slot
		<-s.sem
		return true
	}
	s.bcrypts.Add(1)
	ok := bcrypt.CompareHashAndPassword(u.bcrypt, []byte(password)) == nil
	if ok {
		set.remember(key) // before the slot goes to a waiter
	}
	<-s.sem
	return ok
}

func cacheKey(name, password string) [sha256.Size]byte {
	h := sha256.New()
	io.WriteString(h, name)
	h.Write([]byte{0})
	io.WriteString(h, password)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (set *userSet) cached(k [sha256.Size]byte) bool {
	if set.cacheMax <= 0 {
		return false
	}
	set.cacheMu.Lock()
	defer set.cacheMu.Unlock()
	_, ok := set.cache[k]
	return ok
}

func (set *userSet) remember(k [sha256.Size]byte) {
	if set.cacheMax <= 0 {
		return
	}
	set.cacheMu.Lock()
	defer set.cacheMu.Unlock()
	if len(set.cache) >= set.cacheMax {
		for old := range set.cache { // evict one, whichever the map yields
			delete(set.cache, old)
			break
		}
	}
	set.cache[k] = struct{}{}
}

// load reads the configured file into a new user set.
func (s *Store) load() (*userSet, error) {
	set := &userSet{cacheMax: s.cfg.CacheSize, cache: make(map[[sha256.Size]byte]struct{})}
	var err error
	if s.cfg.PasswordFile != "" {
		err = set.readPasswordFile(s.cfg.PasswordFile)
	} else {
		err = set.readUsersFile(s.cfg.UsersFile)
	}
	if err != nil {
		return nil, err
	}
	if err := set.makeDummy(); err != nil {
		return nil, err
	}
	return set, nil
}

// readFile reads at most limit bytes of path and the file's permission bits.
func readFile(path string, limit int64) ([]byte, os.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, &FileError{File: path, Err: err}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, &FileError{File: path, Err: err}
	}
	if fi.IsDir() {
		return nil, 0, &FileError{File: path, Err: fmt.Errorf("is a directory")}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, 0, &FileError{File: path, Err: err}
	}
	if int64(len(b)) > limit {
		return nil, 0, &FileError{File: path, Err: fmt.Errorf("larger than %d bytes", limit)}
	}
	return b, fi.Mode().Perm(), nil
}

func (set *userSet) readPasswordFile(path string) error {
	b, perm, err := readFile(path, maxPasswordFile)
	if err != nil {
		return err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return &FileError{File: path, Line: 1, Err: ErrEmptyPassword}
	}
	sum := sha256.Sum256(line)
	clear(line)
	clear(b)
	set.users = map[string]*user{DefaultUser: {name: DefaultUser, role: RoleAdmin, sum: sum[:]}}
	if perm&0o077 != 0 {
		set.warnings = append(set.warnings, fmt.Sprintf(
			"password file %s may be read by group or others (mode %04o): chmod 600 it", path, perm))
	}
	return nil
}

func (set *userSet) readUsersFile(path string) error {
	b, perm, err := readFile(path, maxUsersFile)
	if err != nil {
		return err
	}
	users, warnings, err := parseUsers(path, b)
	if err != nil {
		return err
	}
	set.users = users
	if perm&0o007 != 0 {
		set.warnings = append(set.warnings, fmt.Sprintf(
			"users file %s may be read by others (mode %04o): chmod 640 or 600 it", path, perm))
	}
	set.warnings = append(set.warnings, warnings...)
	return nil
}

// parseUsers parses the text of a users file; path only names it in errors
// and warnings.
func parseUsers(path string, b []byte) (map[string]*user, []string, error) {
	users := make(map[string]*user)
	var warnings []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 256), maxLine)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fail := func(err error) (map[string]*user, []string, error) {
			return nil, nil, &FileError{File: path, Line: n, Err: err}
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return fail(fmt.Errorf("%w (%d fields)", ErrBadLine, len(f)))
		}
		name, roleText, hash := f[0], f[1], f[2]
		if !ValidName(name) {
			return fail(ErrBadName)
		}
		if _, dup := users[name]; dup {
			return fail(fmt.Errorf("%w %q", ErrDuplicate, name))
		}
		role, err := ParseRole(roleText)
		if err != nil {
			return fail(fmt.Errorf("%w (want read, write or admin)", ErrBadRole))
		}
		u := &user{name: name, role: role}
		switch {
		case strings.HasPrefix(hash, sha256Prefix):
			sum, err := hex.DecodeString(hash[len(sha256Prefix):])
			if err != nil || len(sum) != sha256.Size {
				return fail(ErrBadHash)
			}
			u.sum = sum
		case validBcrypt(hash):
			cost, err := bcrypt.Cost([]byte(hash))
			if err != nil {
				return fail(ErrBadHash)
			}
			if cost > highBcryptCost {
				warnings = append(warnings, fmt.Sprintf(
					"users file %s line %d: bcrypt cost %d makes every new login of %s slow (%d or less is usual)",
					path, n, cost, name, highBcryptCost))
			}
			u.bcrypt = []byte(hash)
		default:
			return fail(ErrBadHash)
		}
		users[name] = u
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			err = fmt.Errorf("line longer than %d bytes", maxLine)
		}
		return nil, nil, &FileError{File: path, Line: n + 1, Err: err}
	}
	if len(users) == 0 {
		return nil, nil, &FileError{File: path, Err: ErrNoUsers}
	}
	return users, warnings, nil
}

const sha256Prefix = "sha256:"

// validBcrypt reports whether h looks like a bcrypt hash:
// $2a$, $2b$ or $2y$, two cost digits, $, 53 characters of bcrypt's base64.
func validBcrypt(h string) bool {
	if len(h) != 60 || h[0] != '$' || h[1] != '2' || h[3] != '$' || h[6] != '$' {
		return false
	}
	switch h[2] {
	case 'a', 'b', 'y':
	default:
		return false
	}
	if h[4] < '0' || h[4] > '9' || h[5] < '0' || h[5] > '9' {
		return false
	}
	for i := 7; i < len(h); i++ {
		c := h[i]
		if !(c == '.' || c == '/' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// ValidName reports whether name may be a user name: 1 to 64 of
// A-Z a-z 0-9 . _ -.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '.' || c == '_' || c == '-' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// makeDummy makes the hash that unknown names are checked against: bcrypt
// at the highest cost in the set if any user has a bcrypt hash (an unknown
// name then costs what the slowest real one does), SHA-256 otherwise. Its
// password is random and forgotten, so nothing matches it.
func (set *userSet) makeDummy() error {
	var pw [32]byte
	rand.Read(pw[:])
	cost := 0
	for _, u := range set.users {
		if u.bcrypt != nil {
			c, _ := bcrypt.Cost(u.bcrypt)
			cost = max(cost, c)
		}
	}
	if cost == 0 {
		sum := sha256.Sum256(pw[:])
		set.dummy = &user{role: RoleNone, sum: sum[:]}
		return nil
	}
	h, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(pw[:16])), cost)
	if err != nil {
		return fmt.Errorf("auth: making the hash for unknown users: %w", err)
	}
	set.dummy = &user{role: RoleNone, bcrypt: h}
	return nil
}
