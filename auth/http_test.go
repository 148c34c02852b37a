package auth

import (
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"testing"
)

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestFromRequest(t *testing.T) {
	path, pw := usersFixture(t)
	users, err := Load(Config{UsersFile: path})
	if err != nil {
		t.Fatal(err)
	}
	const def = "the:default-password"
	single, err := Load(Config{PasswordFile: writeFile(t, "pw", def+"\n", 0o600)})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		store   *Store
		headers []string // nil: no Authorization header
		want    Principal
		err     error
	}{
		{"none", users, nil, Principal{}, ErrNoCredentials},
		{"basic", users, []string{basic("writer", pw["writer"])}, Principal{"writer", RoleWrite}, nil},
		{"basic lower-case scheme", users, []string{"basic " + base64.StdEncoding.EncodeToString([]byte("reader:"+pw["reader"]))}, Principal{"reader", RoleRead}, nil},
		{"basic bcrypt", users, []string{basic("human", pw["human"])}, Principal{"human", RoleWrite}, nil},
		{"basic wrong", users, []string{basic("writer", pw["reader"])}, Principal{}, ErrWrongPass},
		{"basic unknown", users, []string{basic("ghost", pw["reader"])}, Principal{}, ErrWrongPass},
		{"basic no colon", users, []string{"Basic " + base64.StdEncoding.EncodeToString([]byte("writer"))}, Principal{}, ErrWrongPass},
		{"basic not base64", users, []string{"Basic !!!"}, Principal{}, ErrWrongPass},
		{"basic empty", users, []string{"Basic "}, Principal{}, ErrWrongPass},
		{"basic default", single, []string{basic("", def)}, Principal{"default", RoleAdmin}, nil},
		{"basic default named", single, []string{basic("default", def)}, Principal{"default", RoleAdmin}, nil},
		{"bearer user:pass", users, []string{"Bearer admin:" + pw["admin"]}, Principal{"admin", RoleAdmin}, nil},
		{"bearer bcrypt user:pass", users, []string{"Bearer human:" + pw["human"]}, Principal{"human", RoleWrite}, nil},
		{"bearer wrong", users, []string{"Bearer admin:" + pw["reader"]}, Principal{}, ErrWrongPass},
		{"bearer password alone, no default user", users, []string{"Bearer " + pw["admin"]}, Principal{}, ErrWrongPass},
		{"bearer default password with a colon", single, []string{"Bearer " + def}, Principal{"default", RoleAdmin}, nil},
		{"bearer default:password", single, []string{"Bearer default:" + def}, Principal{"default", RoleAdmin}, nil},
		{"bearer extra spaces", single, []string{"Bearer    " + def}, Principal{"default", RoleAdmin}, nil},
		{"bearer empty", single, []string{"Bearer"}, Principal{}, ErrWrongPass},
		{"bearer blank", single, []string{"Bearer "}, Principal{}, ErrWrongPass},
		{"bearer wrong default", single, []string{"Bearer nope"}, Principal{}, ErrWrongPass},
		{"other scheme", single, []string{"Digest " + def}, Principal{}, ErrWrongPass},
		{"no scheme", single, []string{def}, Principal{}, ErrWrongPass},
		{"empty header", single, []string{""}, Principal{}, ErrWrongPass},
		{"two headers", single, []string{"Bearer " + def, "Bearer " + def}, Principal{}, ErrWrongPass},
		{"disabled", &Store{}, []string{"Bearer x"}, Principal{}, ErrDisabled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/v1/keys/a", nil)
			for _, h := range c.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := c.store.FromRequest(r)
			if got != c.want || !errors.Is(err, c.err) {
				t.Errorf("FromRequest = %+v, %v; want %+v, %v", got, err, c.want, c.err)
			}
		})
	}
	if WWWAuthenticate != `Basic realm="peercache", charset="UTF-8"` {
		t.Errorf("WWWAuthenticate = %s", WWWAuthenticate)
	}
	if p, err := users.Authenticate("reader", pw["reader"]); err != nil || p != (Principal{"reader", RoleRead}) {
		t.Errorf("Authenticate = %+v, %v", p, err)
	}
}
