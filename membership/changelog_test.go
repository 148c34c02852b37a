package membership

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// lineHandler keeps every record as "message k=v k=v" (attributes sorted).
type lineHandler struct {
	mu    sync.Mutex
	lines []string
}

func (h *lineHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *lineHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *lineHandler) WithGroup(string) slog.Handler            { return h }
func (h *lineHandler) Handle(_ context.Context, r slog.Record) error {
	var as []string
	r.Attrs(func(a slog.Attr) bool { as = append(as, fmt.Sprintf("%s=%v", a.Key, a.Value)); return true })
	h.mu.Lock()
	h.lines = append(h.lines, r.Level.String()+" "+r.Message+" "+strings.Join(as, " "))
	h.mu.Unlock()
	return nil
}

// take returns the lines logged since the last take, sorted.
func (h *lineHandler) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.lines
	h.lines = nil
	sort.Strings(out)
	return out
}

func TestChangeLog(t *testing.T) {
	h := &lineHandler{}
	cl := NewChangeLog(slog.New(h), func(x map[string]string) bool { return x["mode"] == "ro" })
	member := func(name, addr, httpAddr string, st State, extra map[string]string) Member {
		return Member{Name: name, Addr: addr, Meta: Meta{HTTPAddr: httpAddr, State: st, Extra: extra}}
	}
	a := member("a", "10.0.0.1:7946", "10.0.0.1:8080", StateActive, nil)
	b := member("b", "10.0.0.2:7946", "10.0.0.2:8080", StateJoining, nil)
	steps := []struct {
		name string
		ms   []Member
		want []string
	}{
		{"first set: every member joined", []Member{a, b}, []string{
			"INFO member joined member=a gossip_addr=10.0.0.1:7946 http_addr=10.0.0.1:8080 state=active members=2",
			"INFO member joined member=b gossip_addr=10.0.0.2:7946 http_addr=10.0.0.2:8080 state=joining members=2",
		}},
		{"same set: nothing", []Member{a, b}, nil},
		{"state", []Member{a, member("b", b.Addr, b.Meta.HTTPAddr, StateActive, nil)}, []string{
			"INFO member state changed member=b from=joining to=active",
		}},
		{"node mode", []Member{a, member("b", b.Addr, b.Meta.HTTPAddr, StateActive, map[string]string{"mode": "ro"})}, []string{
			"INFO member node mode changed member=b read_only=true",
		}},
		{"other extra fields: nothing", []Member{a, member("b", b.Addr, b.Meta.HTTPAddr, StateActive, map[string]string{"mode": "ro", "ring": "x"})}, nil},
		{"address", []Member{a, member("b", "10.0.0.9:7946", b.Meta.HTTPAddr, StateActive, map[string]string{"mode": "ro"})}, []string{
			"INFO member address changed member=b gossip_addr=10.0.0.9:7946 http_addr=10.0.0.2:8080",
		}},
		{"http address", []Member{a, member("b", "10.0.0.9:7946", "10.0.0.9:8080", StateActive, map[string]string{"mode": "ro"})}, []string{
			"INFO member address changed member=b gossip_addr=10.0.0.9:7946 http_addr=10.0.0.9:8080",
		}},
		// One line per member: a state change is the one reported.
		{"state before mode and address", []Member{member("a", "10.0.0.5:7946", a.Meta.HTTPAddr, StateLeaving, map[string]string{"mode": "ro"}),
			member("b", "10.0.0.9:7946", "10.0.0.9:8080", StateActive, map[string]string{"mode": "ro"})}, []string{
			"INFO member state changed member=a from=active to=leaving",
		}},
		{"left", []Member{member("b", "10.0.0.9:7946", "10.0.0.9:8080", StateActive, map[string]string{"mode": "ro"})}, []string{
			"INFO member left member=a last_state=leaving members=1",
		}},
	}
	for _, s := range steps {
		cl.Log(s.ms)
		if got := h.take(); !slices.Equal(got, s.want) {
			t.Errorf("%s:\n got %q\nwant %q", s.name, got, s.want)
		}
	}
}

func TestChangeLogConcurrent(t *testing.T) {
	cl := NewChangeLog(slog.New(&lineHandler{}), func(map[string]string) bool { return false })
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				cl.Log([]Member{{Name: fmt.Sprint("m", (i+j)%3), Meta: Meta{State: StateActive}}})
			}
		}()
	}
	wg.Wait()
}
