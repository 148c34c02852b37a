package auth

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzParseUsers: parsing never panics, a good parse yields only valid
// users, and an error names the file and a line that exists, but no role or
// hash text from the lines it read.
func FuzzParseUsers(f *testing.F) {
	f.Add("# c\n\nalice read " + HashPassword("a") + "\n")
	f.Add("bob admin $2a$04$abcdefghijklmnopqrstuuO8jJ4N0JvV4k4k7PXpuk7B2P0y6lKxa\r\n")
	f.Add("a read sha256:zz\n")
	f.Add("a b\n")
	f.Add("x write " + HashPassword("x") + "\nx read " + HashPassword("y") + "\n")
	f.Add(strings.Repeat("y", 70) + " read " + HashPassword("a"))
	f.Add("d read $2b$99$......................................................\n")
	constants := "auth: users.txt line  (fields) larger than bytes longer than " +
		ErrBadLine.Error() + ErrBadName.Error() + ErrBadRole.Error() + ErrBadHash.Error() +
		ErrDuplicate.Error() + ErrNoUsers.Error()
	f.Fuzz(func(t *testing.T, text string) {
		users, _, err := parseUsers("users.txt", []byte(text))
		lines := strings.Split(text, "\n")
		if err == nil {
			if len(users) == 0 {
				t.Fatal("no error and no users")
			}
			for name, u := range users {
				if !ValidName(name) || u.name != name || u.role < RoleRead || u.role > RoleAdmin ||
					(u.sum == nil) == (u.bcrypt == nil) || u.sum != nil && len(u.sum) != 32 {
					t.Fatalf("bad user %+v", u)
				}
			}
			return
		}
		var fe *FileError
		if !errors.As(err, &fe) || fe.File != "users.txt" || fe.Line < 0 || fe.Line > len(lines) {
			t.Fatalf("err %#v (%d lines)", err, len(lines))
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "auth: users.txt") {
			t.Fatalf("%q does not name the file", msg)
		}
		upTo := fe.Line
		if upTo == 0 {
			upTo = len(lines)
		}
		for _, line := range lines[:upTo] {
			fields := strings.Fields(line)
			if len(fields) < 2 {
				continue
			}
			for _, s := range fields[1:] {
				if len(s) >= 8 && strings.Contains(msg, s) && !strings.Contains(constants, s) {
					t.Fatalf("%q shows %q", msg, s)
				}
			}
		}
	})
}

// FuzzFromRequest: any Authorization header gets a principal only with a
// right password, else ErrWrongPass (ErrNoCredentials needs no header at
// all); nothing panics.
func FuzzFromRequest(f *testing.F) {
	path, pw := usersFixture(f)
	s, err := Load(Config{UsersFile: path})
	if err != nil {
		f.Fatal(err)
	}
	roles := map[string]Role{"reader": RoleRead, "writer": RoleWrite, "admin": RoleAdmin, "human": RoleWrite}
	f.Add(basic("writer", pw["writer"]))
	f.Add(basic("human", pw["human"]))
	f.Add("Bearer admin:" + pw["admin"])
	f.Add("Bearer " + pw["admin"])
	f.Add("Basic " + base64.StdEncoding.EncodeToString([]byte(":")))
	f.Add("Basic ====")
	f.Add("bearer  reader:" + pw["reader"] + " ")
	f.Add("Negotiate abc")
	f.Fuzz(func(t *testing.T, header string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header["Authorization"] = []string{header}
		p, err := s.FromRequest(r)
		if err != nil {
			if err != ErrWrongPass {
				t.Fatalf("FromRequest(%q): %v", header, err)
			}
			if p != (Principal{}) {
				t.Fatalf("principal %+v with an error", p)
			}
			return
		}
		if want, ok := roles[p.User]; !ok || p.Role != want {
			t.Fatalf("FromRequest(%q) = %+v", header, p)
		}
		// It was let in: the header must hold that user's password.
		if !strings.Contains(header, pw[p.User]) {
			dec := ""
			if _, b64, ok := strings.Cut(strings.TrimSpace(header), " "); ok {
				d, _ := base64.StdEncoding.DecodeString(strings.TrimLeft(b64, " "))
				dec = string(d)
			}
			if !strings.Contains(dec, pw[p.User]) {
				t.Fatalf("FromRequest(%q) let in %+v", header, p)
			}
		}
	})
}
