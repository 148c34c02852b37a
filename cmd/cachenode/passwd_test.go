package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercache/peercache/auth"
)

func TestPasswd(t *testing.T) {
	passwd := func(stdin string, args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := runPasswd(args, strings.NewReader(stdin), &out, &errb)
		return out.String(), errb.String(), code
	}
	const pw = "a-long-enough-password-for-sha256"

	// sha256 of the first line, \r\n trimmed.
	for _, in := range []string{pw, pw + "\n", pw + "\r\nsecond\n"} {
		out, errs, code := passwd(in)
		if code != 0 || out != auth.HashPassword(pw)+"\n" || errs != "" {
			t.Errorf("passwd <%q: %d %q %q", in, code, out, errs)
		}
	}
	if _, errs, code := passwd("short\n"); code != 0 || !strings.Contains(errs, "--bcrypt") {
		t.Errorf("short password: %d %q, want a warning", code, errs)
	}

	// Each hash loads in a users file and checks the password.
	check := func(hash, password string) {
		t.Helper()
		f := filepath.Join(t.TempDir(), "users")
		if err := os.WriteFile(f, []byte("u write "+hash), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := auth.Load(auth.Config{UsersFile: f})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := s.Check("u", password); err != nil || r != auth.RoleWrite {
			t.Errorf("Check with %q: %v %v", hash, r, err)
		}
	}
	out, errs, code := passwd("short\n", "--bcrypt", "--cost", "4")
	if code != 0 || !strings.HasPrefix(out, "$2a$04$") || errs != "" {
		t.Fatalf("--bcrypt: %d %q %q", code, out, errs)
	}
	check(strings.TrimSpace(out), "short")

	// --generate: the password on stderr alone, its hash on stdout; stdin
	// ignored.
	out, errs, code = passwd("ignored\n", "--generate")
	gen := strings.TrimSuffix(errs, "\n")
	if code != 0 || len(gen) != 43 || out != auth.HashPassword(gen)+"\n" {
		t.Fatalf("--generate: %d %q %q", code, out, errs)
	}
	check(strings.TrimSpace(out), gen)
	out, errs, code = passwd("", "--generate", "--bcrypt", "--cost", "4")
	gen = strings.TrimSuffix(errs, "\n")
	if code != 0 || len(gen) != 43 || !strings.HasPrefix(out, "$2a$04$") {
		t.Fatalf("--generate --bcrypt: %d %q %q", code, out, errs)
	}
	check(strings.TrimSpace(out), gen)

	// Bad input: 1; usage: 2; -h: 0.
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"", nil, 1, "no password"},
		{"\n", nil, 1, "no password"},
		{strings.Repeat("x", 73) + "\n", []string{"--bcrypt", "--cost", "4"}, 1, "72 bytes"},
		{pw, []string{"extra"}, 2, "unexpected argument"},
		{pw, []string{"--bogus"}, 2, "flag provided but not defined"},
		{pw, []string{"--cost", "4"}, 2, "--cost needs --bcrypt"},
		{pw, []string{"--bcrypt", "--cost", "99"}, 2, "--cost needs --bcrypt"},
		{pw, []string{"-h"}, 0, "usage: cachenode passwd"},
	} {
		out, errs, code := passwd(c.stdin, c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) || code != 0 && out != "" {
			t.Errorf("passwd %v <%q: %d %q %q; want %d and %q", c.args, c.stdin, code, out, errs, c.code, c.msg)
		}
	}
}
