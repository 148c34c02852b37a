package origin

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/peercache/peercache/kv"
)

func TestHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.EscapedPath() {
		case "/items/a%2Fb":
			w.Write([]byte("value"))
		case "/items/gone":
			w.WriteHeader(http.StatusGone)
		case "/items/big":
			w.Write([]byte(strings.Repeat("x", 11)))
		case "/items/broken":
			w.WriteHeader(http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	for _, bad := range []string{"http://x/items", "ftp://x/{key}", "/items/{key}"} {
		if _, err := HTTP(bad, 0, nil, 10); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
	g, err := HTTP(srv.URL+"/items/{key}", time.Minute, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, ttl, err := g(ctx, "a/b"); err != nil || string(v) != "value" || ttl != time.Minute {
		t.Errorf("a/b: %q %v %v", v, ttl, err)
	}
	for _, k := range []string{"missing", "gone"} {
		if _, _, err := g(ctx, k); !errors.Is(err, kv.ErrNotFound) {
			t.Errorf("%s: %v, want not found", k, err)
		}
	}
	for _, k := range []string{"big", "broken"} {
		if _, _, err := g(ctx, k); err == nil || errors.Is(err, kv.ErrNotFound) {
			t.Errorf("%s: %v, want an error", k, err)
		}
	}
}
