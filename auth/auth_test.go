package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func writeFile(t testing.TB, name, text string, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

func mustBcrypt(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestRole(t *testing.T) {
	roles := []Role{RoleNone, RoleRead, RoleWrite, RoleAdmin}
	for i, r := range roles {
		for j, need := range roles {
			if got := r.Allows(need); got != (i >= j) {
				t.Errorf("%v.Allows(%v) = %v", r, need, got)
			}
		}
	}
	for _, r := range roles[1:] {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v", r.String(), got, err)
		}
	}
	if got, err := ParseRole("ADMIN"); err != nil || got != RoleAdmin {
		t.Errorf("ParseRole(ADMIN) = %v, %v", got, err)
	}
	for _, s := range []string{"", "none", "root", "reader"} {
		if _, err := ParseRole(s); !errors.Is(err, ErrBadRole) {
			t.Errorf("ParseRole(%q): err %v, want ErrBadRole", s, err)
		}
	}
	if RoleNone.String() != "none" || Role(9).String() != "Role(9)" {
		t.Errorf("String: %q %q", RoleNone, Role(9))
	}
}

func TestParseUsers(t *testing.T) {
	const hexA = "3a4e0a0bd4d6dbb4b8e1d5cf2c2b5f1fdfbd9ab04a3cb4c7d8f43c9b2d6b0e11"
	good := "# users\n\n  alice read sha256:" + hexA + "\r\n" +
		"bob\twrite  sha256:" + strings.ToUpper(hexA) + "\n" +
		"carol.c_d-9 ADMIN " + mustBcrypt(t, "x") + "\n   # indented comment\n"
	users, warnings, err := parseUsers("u.txt", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings %q", warnings)
	}
	want := map[string]Role{"alice": RoleRead, "bob": RoleWrite, "carol.c_d-9": RoleAdmin}
	if len(users) != len(want) {
		t.Fatalf("got %d users, want %d", len(users), len(want))
	}
	for name, role := range want {
		if u := users[name]; u == nil || u.role != role || u.name != name {
			t.Errorf("user %s = %+v, want role %v", name, u, role)
		}
	}
	if users["carol.c_d-9"].bcrypt == nil || users["bob"].sum == nil {
		t.Error("hash kinds not kept")
	}

	secret := "Sup3rSecretPassw0rdValue"
	okLine := "ok read sha256:" + hexA + "\n"
	bc := mustBcrypt(t, "x")
	bad := []struct {
		name string
		text string
		line int
		want error
	}{
		{"two fields", okLine + "dave " + secret + "\n", 2, ErrBadLine},
		{"four fields", "dave read sha256:" + hexA + " " + secret + "\n", 1, ErrBadLine},
		{"bad name char", "# c\n" + secret + "! read sha256:" + hexA + "\n", 2, ErrBadName},
		{"long name", strings.Repeat("n", 65) + " read sha256:" + hexA + "\n", 1, ErrBadName},
		{"bad role", okLine + okLine[:0] + "dave " + secret + " sha256:" + hexA + "\n", 2, ErrBadRole},
		{"short hex", "\n\ndave read sha256:" + hexA[:62] + "\n", 3, ErrBadHash},
		{"not hex", "dave read sha256:" + strings.Repeat("g", 64) + "\n", 1, ErrBadHash},
		{"plain password", "dave read " + secret + "\n", 1, ErrBadHash},
		{"redis style", "dave read #" + hexA + "\n", 1, ErrBadHash},
		{"bcrypt bad version", "dave read $2x$" + bc[4:] + "\n", 1, ErrBadHash},
		{"bcrypt short", "dave read " + bc[:59] + "\n", 1, ErrBadHash},
		{"bcrypt bad cost", "dave read $2b$99$" + bc[7:] + "\n", 1, ErrBadHash},
		{"duplicate", okLine + "# again\n" + okLine, 3, ErrDuplicate},
		{"no users", "# nobody\n\n", 0, ErrNoUsers},
		{"empty", "", 0, ErrNoUsers},
		{"long line", okLine + "x read sha256:" + strings.Repeat("0", maxLine) + "\n", 2, nil},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := parseUsers("users.txt", []byte(c.text))
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err %v, want a *FileError", err)
			}
			if fe.File != "users.txt" || fe.Line != c.line {
				t.Errorf("file %q line %d, want users.txt line %d", fe.File, fe.Line, c.line)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
			msg := err.Error()
			if !strings.Contains(msg, "users.txt") {
				t.Errorf("%q does not name the file", msg)
			}
			for _, s := range []string{secret, hexA[:16], strings.Repeat("g", 16), bc[7:30], strings.Repeat("0", 16)} {
				if strings.Contains(msg, s) {
					t.Errorf("%q shows %q", msg, s)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(Config{UsersFile: "a", PasswordFile: "b"}); !errors.Is(err, ErrConfig) {
		t.Errorf("both files: %v", err)
	}
	s, err := Load(Config{})
	if err != nil || s.Enabled() {
		t.Fatalf("no files: %v, enabled %v", err, s.Enabled())
	}
	if _, err := s.Check("default", "x"); !errors.Is(err, ErrDisabled) {
		t.Errorf("disabled Check: %v", err)
	}
	if err := s.Reload(); err != nil || s.Warnings() != nil {
		t.Errorf("disabled Reload %v, Warnings %q", err, s.Warnings())
	}
	var nilStore *Store
	if nilStore.Enabled() {
		t.Error("nil store enabled")
	}
	missing := filepath.Join(t.TempDir(), "nope")
	_, err = Load(Config{UsersFile: missing})
	var fe *FileError
	if !errors.As(err, &fe) || !errors.Is(err, os.ErrNotExist) || fe.File != missing {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Load(Config{PasswordFile: t.TempDir()}); err == nil {
		t.Error("a directory as password file: no error")
	}
	big := writeFile(t, "big", strings.Repeat("x", maxPasswordFile+1), 0o600)
	if _, err := Load(Config{PasswordFile: big}); err == nil {
		t.Error("a huge password file: no error")
	}
}

func TestPasswordFile(t *testing.T) {
	const pw = "hunter2-but-long-enough"
	for _, c := range []struct {
		name, text string
		perm       os.FileMode
		warn       bool
	}{
		{"plain", pw, 0o600, false},
		{"newline", pw + "\n", 0o400, false},
		{"crlf and more lines", pw + "\r\nsecond line\n", 0o640, true},
		{"world", pw + "\n", 0o644, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "pw", c.text, c.perm)
			s, err := Load(Config{PasswordFile: path})
			if err != nil {
				t.Fatal(err)
			}
			if !s.Enabled() {
				t.Fatal("not enabled")
			}
			if w := s.Warnings(); (len(w) > 0) != c.warn || c.warn && !strings.Contains(w[0], path) {
				t.Errorf("warnings %q, want some: %v", w, c.warn)
			}
			for _, name := range []string{"", "default"} {
				if r, err := s.Check(name, pw); err != nil || r != RoleAdmin {
					t.Errorf("Check(%q, pw) = %v, %v", name, r, err)
				}
			}
			for _, cr := range [][2]string{{"", pw + "x"}, {"", ""}, {"other", pw}, {"default", "second line"}} {
				if _, err := s.Check(cr[0], cr[1]); !errors.Is(err, ErrWrongPass) {
					t.Errorf("Check(%q, %q): %v", cr[0], cr[1], err)
				}
			}
		})
	}
	for _, text := range []string{"", "\n", "\r\nfoo\n"} {
		path := writeFile(t, "pw", text, 0o600)
		_, err := Load(Config{PasswordFile: path})
		var fe *FileError
		if !errors.Is(err, ErrEmptyPassword) || !errors.As(err, &fe) || fe.File != path {
			t.Errorf("password file %q: %v", text, err)
		}
	}
}

// usersFixture writes a users file with one user of each role and hash kind.
func usersFixture(t testing.TB) (path string, passwords map[string]string) {
	passwords = map[string]string{
		"reader": "r-" + strings.Repeat("a", 40),
		"writer": "w-" + strings.Repeat("b", 40),
		"admin":  "a-" + strings.Repeat("c", 40),
		"human":  "correct horse battery",
	}
	text := "reader read " + HashPassword(passwords["reader"]) + "\n" +
		"writer write " + HashPassword(passwords["writer"]) + "\n" +
		"admin admin " + HashPassword(passwords["admin"]) + "\n" +
		"human write " + mustBcrypt(t, passwords["human"]) + "\n"
	return writeFile(t, "users", text, 0o600), passwords
}

func TestCheck(t *testing.T) {
	path, pw := usersFixture(t)
	s, err := Load(Config{UsersFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if w := s.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q", w)
	}
	for _, c := range []struct {
		user, pass string
		role       Role
		err        error
	}{
		{"reader", pw["reader"], RoleRead, nil},
		{"writer", pw["writer"], RoleWrite, nil},
		{"admin", pw["admin"], RoleAdmin, nil},
		{"human", pw["human"], RoleWrite, nil},
		{"reader", pw["writer"], RoleNone, ErrWrongPass},
		{"human", pw["human"] + " ", RoleNone, ErrWrongPass},
		{"human", pw["human"] + strings.Repeat("x", 80), RoleNone, ErrWrongPass},
		{"nobody", pw["reader"], RoleNone, ErrWrongPass},
		{"", pw["admin"], RoleNone, ErrWrongPass}, // no default user in this file
		{"admin", "", RoleNone, ErrWrongPass},
	} {
		role, err := s.Check(c.user, c.pass)
		if role != c.role || !errors.Is(err, c.err) {
			t.Errorf("Check(%q, %q) = %v, %v; want %v, %v", c.user, c.pass, role, err, c.role, c.err)
		}
		if err != nil && err != ErrWrongPass {
			t.Errorf("Check(%q): error %v is not ErrWrongPass itself", c.user, err)
		}
	}
}

// TestUnknownUserSameWork checks the constant-time path: an unknown name is
// compared against a dummy hash of the kind of the slowest user, which never
// matches.
func TestUnknownUserSameWork(t *testing.T) {
	path, _ := usersFixture(t)
	s, err := Load(Config{UsersFile: path})
	if err != nil {
		t.Fatal(err)
	}
	d := s.set.Load().dummy
	if d == nil || d.bcrypt == nil {
		t.Fatalf("dummy %+v: want a bcrypt hash when a user has one", d)
	}
	if c, _ := bcrypt.Cost(d.bcrypt); c != bcrypt.MinCost {
		t.Errorf("dummy cost %d, want the users' %d", c, bcrypt.MinCost)
	}
	shaOnly := writeFile(t, "users", "a read "+HashPassword("x")+"\n", 0o600)
	s2, err := Load(Config{UsersFile: shaOnly})
	if err != nil {
		t.Fatal(err)
	}
	if d := s2.set.Load().dummy; d == nil || d.sum == nil {
		t.Fatalf("dummy %+v: want a sha256 hash", d)
	}
	// The dummy never matches, not even the empty password.
	if _, err := s2.Check("zzz", ""); err != ErrWrongPass {
		t.Errorf("unknown user: %v", err)
	}
}

func TestBcryptCache(t *testing.T) {
	path, pw := usersFixture(t)
	s, err := Load(Config{UsersFile: path, CacheSize: 2, BcryptConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	set := s.set.Load()
	key := cacheKey("human", pw["human"])
	if set.cached(key) {
		t.Fatal("cached before any check")
	}
	if _, err := s.Check("human", "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if len(set.cache) != 0 {
		t.Errorf("a failed check was cached")
	}
	// Many connections with the same password: all succeed, one entry.
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if r, err := s.Check("human", pw["human"]); err != nil || r != RoleWrite {
				t.Errorf("Check = %v, %v", r, err)
			}
		})
	}
	wg.Wait()
	// The wrong one and the first right one; the others waited for the
	// slot and found the verification cached.
	if n := s.bcrypts.Load(); n != 2 {
		t.Errorf("%d bcrypt verifications, want 2", n)
	}
	if !set.cached(key) || len(set.cache) != 1 {
		t.Errorf("cache %d entries, key cached %v", len(set.cache), set.cached(key))
	}
	// A cache hit must not let another password in.
	if _, err := s.Check("human", pw["human"]+"!"); err != ErrWrongPass {
		t.Errorf("other password: %v", err)
	}
	// Bounded.
	for i := range 5 {
		set.remember(cacheKey("x", string(rune('a'+i))))
	}
	if len(set.cache) > 2 {
		t.Errorf("cache grew to %d, bound 2", len(set.cache))
	}
	// sha256 users are not cached (they are cheap).
	if _, err := s.Check("reader", pw["reader"]); err != nil || set.cached(cacheKey("reader", pw["reader"])) {
		t.Errorf("sha256 check %v, cached %v", err, set.cached(cacheKey("reader", pw["reader"])))
	}
	// Reload forgets.
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if s.set.Load().cached(key) {
		t.Error("cache survived a reload")
	}
	// No cache at all.
	s0, err := Load(Config{UsersFile: path, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s0.Check("human", pw["human"]); err != nil {
			t.Fatal(err)
		}
	}
	if len(s0.set.Load().cache) != 0 {
		t.Error("cached with CacheSize -1")
	}
}

func TestBcryptConcurrencyBound(t *testing.T) {
	path, pw := usersFixture(t)
	s, err := Load(Config{UsersFile: path, BcryptConcurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if cap(s.sem) != 1 {
		t.Fatalf("sem %d", cap(s.sem))
	}
	// Hold the only slot: a bcrypt check waits, a sha256 one does not.
	s.sem <- struct{}{}
	done := make(chan error, 1)
	go func() { _, err := s.Check("human", pw["human"]); done <- err }()
	if _, err := s.Check("reader", pw["reader"]); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("bcrypt check ran without a slot: %v", err)
	default:
	}
	<-s.sem
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if d, _ := Load(Config{UsersFile: path}); cap(d.sem) != DefaultBcryptConcurrency {
		t.Errorf("default concurrency %d", cap(d.sem))
	}
}

func TestReload(t *testing.T) {
	path, pw := usersFixture(t)
	s, err := Load(Config{UsersFile: path})
	if err != nil {
		t.Fatal(err)
	}
	// A broken file: the error names the line, the old users stay.
	if err := os.WriteFile(path, []byte("reader read sha256:00\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = s.Reload()
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != 1 || !errors.Is(err, ErrBadHash) {
		t.Fatalf("Reload of a bad file: %v", err)
	}
	if r, err := s.Check("reader", pw["reader"]); err != nil || r != RoleRead {
		t.Errorf("old user after a failed reload: %v, %v", r, err)
	}
	// A missing file: same.
	os.Remove(path)
	if err := s.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload of a missing file: %v", err)
	}
	if _, err := s.Check("admin", pw["admin"]); err != nil {
		t.Errorf("old user after a failed reload: %v", err)
	}
	// A good new file replaces the users.
	if err := os.WriteFile(path, []byte("reader admin "+HashPassword("new")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Check("reader", "new"); err != nil || r != RoleAdmin {
		t.Errorf("new user: %v, %v", r, err)
	}
	for _, name := range []string{"reader", "admin"} {
		if _, err := s.Check(name, pw[name]); err != ErrWrongPass {
			t.Errorf("old password of %s after reload: %v", name, err)
		}
	}
	if w := s.Warnings(); len(w) != 1 || !strings.Contains(w[0], "read by others") {
		t.Errorf("warnings %q", w)
	}
	// Reloads racing checks.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				s.Check("reader", "new")
			}
		})
	}
	for range 10 {
		if err := s.Reload(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
}

func TestPasswords(t *testing.T) {
	sum := sha256.Sum256([]byte("pw"))
	if got := HashPassword("pw"); got != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("HashPassword = %q", got)
	}
	a, err := GeneratePassword()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GeneratePassword()
	if len(a) != 43 || a == b || strings.ContainsAny(a, "+/=:") {
		t.Errorf("GeneratePassword = %q, %q", a, b)
	}
	h, err := BcryptHash(a, bcrypt.MinCost)
	if err != nil || !validBcrypt(h) || bcrypt.CompareHashAndPassword([]byte(h), []byte(a)) != nil {
		t.Errorf("BcryptHash = %q, %v", h, err)
	}
	if _, err := BcryptHash(strings.Repeat("x", 73), bcrypt.MinCost); !errors.Is(err, bcrypt.ErrPasswordTooLong) {
		t.Errorf("BcryptHash of 73 bytes: %v", err)
	}
	// Both hash forms load and check.
	path := writeFile(t, "users", "g read "+HashPassword(a)+"\nh write "+h+"\n", 0o600)
	s, err := Load(Config{UsersFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Check("g", a); r != RoleRead || err != nil {
		t.Errorf("g: %v %v", r, err)
	}
	if r, err := s.Check("h", a); r != RoleWrite || err != nil {
		t.Errorf("h: %v %v", r, err)
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"a": true, "A.b_c-9": true, strings.Repeat("x", 64): true,
		"": false, strings.Repeat("x", 65): false, "a b": false, "a:b": false, "é": false, "a/b": false,
	} {
		if ValidName(name) != want {
			t.Errorf("ValidName(%q) = %v", name, !want)
		}
	}
}
