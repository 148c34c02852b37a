package replica

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/peercache/peercache/internal/clusterview"
	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/store"
)

// WriteThrough copies to the previous owners that announce another ring
// than this node's, and counts each copy's result.
func TestWriteThrough(t *testing.T) {
	r := ring.New([]string{"self", "same", "stale", "down"}, ring.Options{})
	member := func(name, checksum string) membership.Member {
		return membership.Member{Name: name, Meta: membership.Meta{Extra: map[string]string{clusterview.MetaRing: checksum}}}
	}
	v := &clusterview.View{Ring: r, Checksum: "new", Members: map[string]membership.Member{
		"self": member("self", "new"), "same": member("same", "new"), "stale": member("stale", "old"), "down": member("down", "old")}}
	var mu sync.Mutex
	var sent []string
	send := func(ctx context.Context, to string, es []store.Entry) ([]kv.ImportResult, error) {
		mu.Lock()
		sent = append(sent, to)
		mu.Unlock()
		if to == "down" {
			return nil, errors.New("unreachable")
		}
		return []kv.ImportResult{kv.Acked}, nil
	}
	results := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wt"}, []string{"result"})
	WriteThrough(context.Background(), v, "self", store.Entry{Key: "k", Version: 1}, send, results, slog.New(slog.DiscardHandler))
	slices.Sort(sent)
	if !slices.Equal(sent, []string{"down", "stale"}) {
		t.Fatalf("copies sent to %v, want the members announcing another ring: [down stale]", sent)
	}
	value := func(label string) float64 {
		var m dto.Metric
		if err := results.WithLabelValues(label).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	if a, e := value("applied"), value("error"); a != 1 || e != 1 {
		t.Fatalf("counted applied %v, error %v; want 1 and 1", a, e)
	}
}
