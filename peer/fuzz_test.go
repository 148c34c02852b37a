package peer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

// validFrames is a stream a member could send: hello, then one request of
// every kind.
func validFrames() []byte {
	var b []byte
	frame := func(op byte, id uint32, payload func([]byte) []byte) {
		s := len(b)
		b = appendHeader(b, op, 0, id)
		b = payload(b)
		finishFrame(b, s)
	}
	frame(opHello, 0, func(b []byte) []byte { return appendHello(b, "", "client") })
	dl := time.Now().Add(time.Hour)
	frame(opGet, 1, func(b []byte) []byte { return appendGet(appendDeadline(b, dl), "k", false) })
	frame(opWrite, 2, func(b []byte) []byte {
		return appendWrite(appendDeadline(b, dl), "k", kv.Mutation{Value: []byte("v"), TTL: time.Minute})
	})
	frame(opHandoff, 3, func(b []byte) []byte { return append(appendDeadline(b, dl), "k"...) })
	frame(opImport, 4, func(b []byte) []byte {
		return AppendEntries(appendDeadline(b, dl), []store.Entry{{Key: "k", Value: []byte("v"), Version: 5, ExpireAt: 1 << 41}}, time.Now())
	})
	frame(opInvalidate, 5, func(b []byte) []byte { return appendKeys(appendDeadline(b, dl), []string{"a", "b"}) })
	frame(opPing, 6, func(b []byte) []byte { return appendDeadline(b, time.Time{}) })
	frame(opMany, 7, func(b []byte) []byte {
		b = binary.AppendUvarint(appendDeadline(b, dl), 2)
		b = appendSub(b, opGet, func(b []byte) []byte { return appendGet(b, "k", false) })
		return appendSub(b, opWrite, func(b []byte) []byte { return appendWrite(b, "j", kv.Mutation{Value: []byte("v")}) })
	})
	return b
}

// FuzzDecoders: no input makes a decoder panic, and what decodes encodes
// back to something that decodes the same.
func FuzzDecoders(f *testing.F) {
	f.Add([]byte(validFrames()))
	f.Add(appendHello(nil, "label", "name"))
	f.Add(appendWrite(nil, "key", kv.Mutation{Value: []byte("value"), TTL: time.Second, IfAbsent: true}))
	f.Add(appendWrite(nil, "counter", kv.Mutation{Value: []byte("-5"), Op: kv.OpIncrBy}))
	f.Add(appendWrite(nil, "at", kv.Mutation{Value: []byte("v"), ExpireAt: time.UnixMilli(1800000000123)}))
	f.Add(appendWrite(nil, "at", kv.Mutation{Expire: true, ExpireAt: time.UnixMilli(1)}))
	f.Add(appendWrite(nil, "gt", kv.Mutation{Expire: true, TTL: time.Second, ExpireIf: kv.ExpireXX | kv.ExpireGT}))
	f.Add(appendWriteResult(nil, kv.WriteResult{Item: kv.Item{Value: []byte("42"), Version: 7}, Applied: true}, true))
	f.Add(appendItem(nil, kv.Item{Value: []byte("v"), Version: 3, ExpireAt: time.Now().Add(time.Minute)}, time.Second, time.Now()))
	f.Add(appendError(nil, &kv.Error{Status: 421, Owner: "n2", Message: "m", Retryable: true}))
	f.Add(appendKeys(nil, []string{"x", "yy"}))
	f.Add(appendMulti(nil, kv.Multi{Kind: kv.MultiMSetNX, Keys: []string{"{t}a", "{t}b"}, Values: [][]byte{[]byte("1"), nil}}))
	f.Add(appendMulti(nil, kv.Multi{Kind: kv.MultiRename, Keys: []string{"{t}a", "{t}b"}}))
	f.Add(appendScan(nil, 1<<53, 100))
	f.Add(AppendEntries(nil, []store.Entry{{Key: "k", Version: 1, Tombstone: true, ExpireAt: 1 << 41}}, time.Now()))
	f.Fuzz(func(t *testing.T, p []byte) {
		now := time.Now()
		decodeHello(p)
		decodeGet(p, 1024)
		decodeItem(p, now)
		if key, m, err := decodeWrite(p, 1024, 1<<20); err == nil {
			k2, m2, err := decodeWrite(appendWrite(nil, key, m), 1024, 1<<20)
			if err != nil || k2 != key || !bytes.Equal(m2.Value, m.Value) || m2.TTL != m.TTL || !m2.ExpireAt.Equal(m.ExpireAt) || m2.Delete != m.Delete || m2.Op != m.Op || m2.ExpireIf != m.ExpireIf {
				t.Fatalf("write round trip: %q %+v -> %q %+v %v", key, m, k2, m2, err)
			}
		}
		if r, err := decodeWriteResult(p, "k"); err == nil {
			withValue := p[0]&resValue != 0
			r2, err := decodeWriteResult(appendWriteResult(nil, r, withValue), "k")
			if err != nil || r2.Version != r.Version || r2.Applied != r.Applied || r2.Existed != r.Existed || !bytes.Equal(r2.Value, r.Value) {
				t.Fatalf("write result round trip: %+v -> %+v %v", r, r2, err)
			}
		}
		if m, err := decodeMulti(p, 1024, 1<<20); err == nil {
			m2, err := decodeMulti(appendMulti(nil, m), 1024, 1<<20)
			if err != nil || m2.Kind != m.Kind || !slices.Equal(m2.Keys, m.Keys) || len(m2.Values) != len(m.Values) {
				t.Fatalf("multi round trip: %+v -> %+v %v", m, m2, err)
			}
			for i := range m.Values {
				if !bytes.Equal(m2.Values[i], m.Values[i]) {
					t.Fatalf("multi round trip: value %d %q -> %q", i, m.Values[i], m2.Values[i])
				}
			}
		}
		if cur, n, err := decodeScan(p); err == nil {
			if c2, n2, err := decodeScan(appendScan(nil, cur, n)); err != nil || c2 != cur || n2 != n {
				t.Fatalf("scan round trip: %d %d -> %d %d %v", cur, n, c2, n2, err)
			}
		}
		if r, err := decodeMultiResult(p); err == nil {
			if r2, err := decodeMultiResult(appendMultiResult(nil, r)); err != nil || r2 != r {
				t.Fatalf("multi result round trip: %+v -> %+v %v", r, r2, err)
			}
		}
		if keys, err := decodeKeys(p, 4096, 1024); err == nil {
			if k2, err := decodeKeys(appendKeys(nil, keys), 4096, 1024); err != nil || len(k2) != len(keys) {
				t.Fatalf("keys round trip: %v %v", k2, err)
			}
		}
		if e, err := decodeError(p); err == nil {
			if e2, err := decodeError(appendError(nil, e)); err != nil || *e2 != *e {
				t.Fatalf("error round trip: %+v %+v %v", e, e2, err)
			}
		}
		if es, err := DecodeEntries(p, EntryLimits{MaxEntries: 100, MaxKeyBytes: 1024, MaxValueBytes: 1 << 20}, now); err == nil {
			if _, err := DecodeEntries(AppendEntries(nil, es, now), EntryLimits{MaxEntries: 100, MaxKeyBytes: 1024, MaxValueBytes: 1 << 20}, now); err != nil {
				t.Fatalf("entries round trip: %v", err)
			}
		}
		DecodeResults(p, len(p)%16)
		decodeSubs(p, 1<<20)
		takeDeadline(p)
	})
}

// FuzzServerConn feeds arbitrary bytes to a server connection (no TLS, so
// that the fuzzer reaches the hello and the requests): the server never
// panics, never reads a frame beyond its limits, and carries out nothing
// for a caller whose hello it did not accept.
func FuzzServerConn(f *testing.F) {
	f.Add(validFrames())
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	hello := appendHeader(nil, opHello, 0, 0)
	hello = appendHello(hello, "", "mallory")
	finishFrame(hello, 0)
	f.Add(append(hello, validFrames()[len(hello):]...))
	big := appendHeader(nil, opHello, 0, 0)
	big[0] = 0xff
	f.Add(big)
	f.Fuzz(func(t *testing.T, in []byte) {
		h := newMemHandler("client")
		s, err := NewServer(nopListener{}, h, ServerConfig{Name: "s", HandshakeTimeout: time.Second,
			Limits: Limits{MaxKeyBytes: 64, MaxValueBytes: 4096, MaxBatchBytes: 1 << 16}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		cli, srv := net.Pipe()
		s.mu.Lock()
		s.conns[srv] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		done := make(chan struct{})
		go func() { s.serveConn(srv); close(done) }()
		go io.Copy(io.Discard, cli)
		cli.SetWriteDeadline(time.Now().Add(time.Second))
		cli.Write(in)
		cli.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the server connection did not end after the input")
		}
		s.Close()
		if !acceptableHello(in) && (h.writes.Load() != 0 || h.imported != 0) {
			t.Fatalf("requests carried out without an accepted hello")
		}
	})
}

// acceptableHello reports whether in starts with a hello the fuzzed server
// accepts (cluster label "", member "client").
func acceptableHello(in []byte) bool {
	var hb [headerSize]byte
	h, err := readHeader(bytes.NewReader(in), &hb, maxHelloFrame)
	if err != nil || h.op != opHello || len(in) < headerSize+int(h.length) {
		return false
	}
	label, name, err := decodeHello(in[headerSize : headerSize+int(h.length)])
	return err == nil && label == "" && name == "client"
}

// nopListener is a listener that never accepts (FuzzServerConn hands the
// server its connections directly).
type nopListener struct{}

func (nopListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (nopListener) Close() error              { return nil }
func (nopListener) Addr() net.Addr            { return &net.TCPAddr{} }

// An error's kind survives the wire: a read-only refusal forwarded from
// the owner is still ErrReadOnly (not ErrUnavailable) where it arrives,
// and a misdirected one still names the owner.
func TestErrorKindsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		e    *kv.Error
		kind error
	}{
		{&kv.Error{Status: 503, ReadOnly: true, Retryable: true, Message: "node n1 is read-only (cluster mode)"}, kv.ErrReadOnly},
		{&kv.Error{Status: 503, Retryable: true, Message: "owner unreachable"}, kv.ErrUnavailable},
		{&kv.Error{Status: 421, Owner: "n2", Retryable: true, Message: "not mine"}, kv.ErrNotOwner},
		{&kv.Error{Status: 400, Message: "bad key"}, kv.ErrInvalid},
		{&kv.Error{Status: 413, Message: "too big"}, kv.ErrTooLarge},
		{&kv.Error{Status: 403, Message: "not a member"}, kv.ErrRefused},
	} {
		got, err := decodeError(appendError(nil, tc.e))
		if err != nil || *got != *tc.e {
			t.Fatalf("%v: decoded %+v, %v", tc.e, got, err)
		}
		for _, k := range []error{kv.ErrReadOnly, kv.ErrUnavailable, kv.ErrNotOwner, kv.ErrInvalid, kv.ErrTooLarge, kv.ErrRefused} {
			if errors.Is(got, k) != (k == tc.kind) {
				t.Errorf("%q: errors.Is(%v) = %v", tc.e.Message, k, errors.Is(got, k))
			}
		}
	}
}
