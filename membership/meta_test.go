package membership

import (
	"maps"
	"testing"
)

func TestMetaWithExtra(t *testing.T) {
	t.Parallel()
	orig := Meta{State: StateActive, Extra: map[string]string{"a": "1"}}
	kept := maps.Clone(orig.Extra)

	m := orig.WithExtra("b", "2")
	if !maps.Equal(m.Extra, map[string]string{"a": "1", "b": "2"}) || m.State != StateActive {
		t.Fatalf("set: %+v", m)
	}
	if !maps.Equal(orig.Extra, kept) {
		t.Fatalf("the original's map changed: %v", orig.Extra)
	}
	m2 := m.WithExtra("a", "")
	if !maps.Equal(m2.Extra, map[string]string{"b": "2"}) || !maps.Equal(m.Extra, map[string]string{"a": "1", "b": "2"}) {
		t.Fatalf("remove: %v (before: %v)", m2.Extra, m.Extra)
	}
	if m3 := m2.WithExtra("b", ""); m3.Extra != nil {
		t.Fatalf("removing the last field leaves %#v, want nil", m3.Extra)
	}
	// No change: the same map, not a copy.
	if m4 := m.WithExtra("a", "1"); !sameMap(m4.Extra, m.Extra) {
		t.Fatal("an unchanged field copied the map")
	}
	if m5 := (Meta{}).WithExtra("x", ""); m5.Extra != nil {
		t.Fatalf("removing from no map gives %#v", m5.Extra)
	}
	if m6 := (Meta{}).WithExtra("x", "y"); !maps.Equal(m6.Extra, map[string]string{"x": "y"}) {
		t.Fatalf("set on no map gives %v", m6.Extra)
	}
}

// sameMap reports whether a and b are the same map (a write to one shows in
// the other).
func sameMap(a, b map[string]string) bool {
	const probe = "\x00probe"
	a[probe] = "1"
	defer delete(a, probe)
	return b[probe] == "1"
}

func TestMetaRoundTrip(t *testing.T) {
	m := Meta{HTTPAddr: "10.0.0.1:8080", PeerAddr: "10.0.0.1:7947", RESPAddr: "10.0.0.1:6380", State: StateActive, Proto: ProtocolVersion}
	b, err := EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMeta(b)
	if err != nil || !got.Equal(m) {
		t.Fatalf("DecodeMeta(EncodeMeta(%+v)) = %+v, %v", m, got, err)
	}
	if o := m; func() bool { o.RESPAddr = "10.0.0.1:6381"; return o.Equal(m) }() {
		t.Fatal("Equal ignores RESPAddr")
	}
	if _, err := validateMeta("Config.Meta", Meta{State: StateActive, RESPAddr: "nohostport"}); err == nil {
		t.Fatal("a RESPAddr without a port is accepted")
	}
}
