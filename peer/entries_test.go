package peer

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

var lim = EntryLimits{MaxEntries: 100, MaxKeyBytes: 64, MaxValueBytes: 1024}

func TestRoundTrip(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	in := []store.Entry{
		{Key: "a", Value: []byte("hello"), Version: 7},
		{Key: "b\x00bin", Value: []byte{0, 1, 2}, Version: 1 << 62, ExpireAt: now.UnixMilli() + 60_000},
		{Key: "c", Version: 9, Tombstone: true, ExpireAt: now.UnixMilli() + 5},
		{Key: "d", Value: []byte{}, Version: 3, ExpireAt: now.UnixMilli() - 10}, // expired: 1 ms left
	}
	b := AppendEntries(nil, in, now)
	later := now.Add(2 * time.Second) // receiver clock ahead (or 2 s in transit)
	out, err := DecodeEntries(b, lim, later)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d entries", len(out))
	}
	for i := range in {
		want := in[i]
		if want.ExpireAt != 0 {
			left := want.ExpireAt - now.UnixMilli()
			if left < 1 {
				left = 1
			}
			// Never later than the original expiry.
			want.ExpireAt = min(later.UnixMilli()+left, max(want.ExpireAt, 1))
		}
		got := out[i]
		if got.Key != want.Key || !bytes.Equal(got.Value, want.Value) || got.Version != want.Version ||
			got.ExpireAt != want.ExpireAt || got.Tombstone != want.Tombstone {
			t.Errorf("entry %d: got %+v want %+v", i, got, want)
		}
	}
}

// A receiver whose clock is behind keeps "now + remaining" (the absolute
// time would add the skew); one whose clock is ahead, or a batch that spent
// time in transit, keeps the absolute time (never extending the lifetime).
func TestExpiryNeverExtended(t *testing.T) {
	sent := time.UnixMilli(1_700_000_000_000)
	e := store.Entry{Key: "k", Value: []byte("v"), Version: 1, ExpireAt: sent.UnixMilli() + 60_000}
	b := AppendEntries(nil, []store.Entry{e}, sent)
	for _, tc := range []struct {
		name string
		recv time.Time
		want int64
	}{
		{"same clock, instant", sent, e.ExpireAt},
		{"3 s in transit", sent.Add(3 * time.Second), e.ExpireAt},
		{"receiver 5 s behind", sent.Add(-5 * time.Second), sent.UnixMilli() - 5_000 + 60_000},
	} {
		out, err := DecodeEntries(b, lim, tc.recv)
		if err != nil || out[0].ExpireAt != tc.want {
			t.Errorf("%s: expiry %d (err %v), want %d", tc.name, out[0].ExpireAt, err, tc.want)
		}
	}
}

func TestMalformed(t *testing.T) {
	now := time.Now()
	good := AppendEntries(nil, []store.Entry{{Key: "k", Value: []byte("v"), Version: 1}}, now)
	big := make([]store.Entry, 101)
	for i := range big {
		big[i] = store.Entry{Key: "k", Version: 1}
	}
	cases := map[string][]byte{
		"empty":         nil,
		"bad magic":     append([]byte("XXXX"), good[4:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"too many":      AppendEntries(nil, big, now),
		"key too long":  AppendEntries(nil, []store.Entry{{Key: string(make([]byte, 65)), Version: 1}}, now),
		"empty key":     AppendEntries(nil, []store.Entry{{Key: "", Version: 1}}, now),
		"zero version":  AppendEntries(nil, []store.Entry{{Key: "k", Version: 0}}, now),
		"value too big": AppendEntries(nil, []store.Entry{{Key: "k", Version: 1, Value: make([]byte, 1025)}}, now),
		"tomb w/ value": AppendEntries(nil, []store.Entry{{Key: "k", Version: 1, Tombstone: true, Value: []byte("x")}}, now),
		"count lies":    append([]byte("PCB1\xff\xff\xff\xff"), good[8:]...),
	}
	for name, b := range cases {
		if _, err := DecodeEntries(b, lim, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestResults(t *testing.T) {
	b := AppendResults(nil, []kv.ImportResult{kv.Acked, kv.Refused})
	r, err := DecodeResults(b, 2)
	if err != nil || len(r) != 2 || r[0] != kv.Acked || r[1] != kv.Refused {
		t.Fatalf("got %v %v", r, err)
	}
	if _, err := DecodeResults(b, 3); err == nil {
		t.Fatal("count mismatch accepted")
	}
	if _, err := DecodeResults(AppendResults(nil, []kv.ImportResult{9}), 1); err == nil {
		t.Fatal("unknown code accepted")
	}
}

func FuzzDecodeEntries(f *testing.F) {
	f.Add(AppendEntries(nil, []store.Entry{{Key: "k", Value: []byte("v"), Version: 1, ExpireAt: 5}}, time.UnixMilli(0)))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeEntries(b, lim, time.UnixMilli(0))
	})
}
