// Binary encoding of entry batches (migration imports, replica copies,
// repairs, handoff reads) and of their per-entry results.
//
// Expiry travels both as the remaining lifetime in milliseconds and as the
// sender's absolute expiry time; the receiver keeps the earlier of "now +
// remaining" and the absolute time. With synchronised clocks that is exactly
// the original expiry (time in transit does not extend it); with skewed
// clocks the key never gains more than the skew or the transit time, whichever
// is smaller. Decoding is strict: every length is bounded by EntryLimits and a
// malformed batch is rejected whole.

package peer

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/peercache/peercache/kv"
	"github.com/peercache/peercache/store"
)

const (
	batchMagic   = "PCB1"
	resultMagic  = "PCR1"
	flagTomb     = 1 << 0
	flagHasTTL   = 1 << 1
	knownFlags   = flagTomb | flagHasTTL
	entryMinSize = 1 + 1 + 8 + 1 // keylen, flags, version, vallen (no ttl)
)

// EntryLimits bound what a decoder accepts.
type EntryLimits struct {
	MaxEntries    int // entries per batch
	MaxKeyBytes   int // bytes per key
	MaxValueBytes int // bytes per value
}

// AppendEntries encodes entries, converting each ExpireAt to the time left
// after now. Entries already expired are encoded with 1 ms left so the
// receiver drops them consistently.
func AppendEntries(dst []byte, entries []store.Entry, now time.Time) []byte {
	nowMs := now.UnixMilli()
	dst = append(dst, batchMagic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(entries)))
	for _, e := range entries {
		dst = binary.AppendUvarint(dst, uint64(len(e.Key)))
		dst = append(dst, e.Key...)
		var flags byte
		if e.Tombstone {
			flags |= flagTomb
		}
		if e.ExpireAt != 0 {
			flags |= flagHasTTL
		}
		dst = append(dst, flags)
		dst = binary.BigEndian.AppendUint64(dst, e.Version)
		if e.ExpireAt != 0 {
			left := e.ExpireAt - nowMs
			if left < 1 {
				left = 1
			}
			dst = binary.AppendUvarint(dst, uint64(left))
			dst = binary.AppendUvarint(dst, uint64(max(e.ExpireAt, 1)))
		}
		dst = binary.AppendUvarint(dst, uint64(len(e.Value)))
		dst = append(dst, e.Value...)
	}
	return dst
}

// DecodeEntries parses a batch made by AppendEntries, turning remaining
// lifetimes back into absolute expiry times relative to now. Values alias b.
func DecodeEntries(b []byte, lim EntryLimits, now time.Time) ([]store.Entry, error) {
	if len(b) < len(batchMagic)+4 || string(b[:len(batchMagic)]) != batchMagic {
		return nil, fmt.Errorf("%w: missing header", ErrMalformed)
	}
	b = b[len(batchMagic):]
	n := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	if lim.MaxEntries > 0 && n > lim.MaxEntries {
		return nil, fmt.Errorf("%w: %d entries, the limit is %d", ErrMalformed, n, lim.MaxEntries)
	}
	if n > len(b)/entryMinSize {
		return nil, fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrMalformed, n, len(b))
	}
	nowMs := now.UnixMilli()
	out := make([]store.Entry, 0, n)
	for i := 0; i < n; i++ {
		var e store.Entry
		kl, k := binary.Uvarint(b)
		if k <= 0 || kl > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: entry %d: bad key length", ErrMalformed, i)
		}
		if kl == 0 || (lim.MaxKeyBytes > 0 && kl > uint64(lim.MaxKeyBytes)) {
			return nil, fmt.Errorf("%w: entry %d: key length %d out of range", ErrMalformed, i, kl)
		}
		b = b[k:]
		e.Key = string(b[:kl])
		b = b[kl:]
		if len(b) < 9 {
			return nil, fmt.Errorf("%w: entry %d: truncated", ErrMalformed, i)
		}
		flags := b[0]
		if flags&^knownFlags != 0 {
			return nil, fmt.Errorf("%w: entry %d: unknown flags %#x", ErrMalformed, i, flags)
		}
		e.Tombstone = flags&flagTomb != 0
		e.Version = binary.BigEndian.Uint64(b[1:9])
		if e.Version == 0 {
			return nil, fmt.Errorf("%w: entry %d: zero version", ErrMalformed, i)
		}
		b = b[9:]
		if flags&flagHasTTL != 0 {
			ttl, k := binary.Uvarint(b)
			if k <= 0 || ttl == 0 || ttl > 1<<53 {
				return nil, fmt.Errorf("%w: entry %d: bad ttl", ErrMalformed, i)
			}
			b = b[k:]
			abs, k := binary.Uvarint(b)
			if k <= 0 || abs == 0 || abs > 1<<62 {
				return nil, fmt.Errorf("%w: entry %d: bad expiry time", ErrMalformed, i)
			}
			b = b[k:]
			e.ExpireAt = min(nowMs+int64(ttl), int64(abs))
		}
		vl, k := binary.Uvarint(b)
		if k <= 0 || vl > uint64(len(b)-k) {
			return nil, fmt.Errorf("%w: entry %d: bad value length", ErrMalformed, i)
		}
		if lim.MaxValueBytes > 0 && vl > uint64(lim.MaxValueBytes) {
			return nil, fmt.Errorf("%w: entry %d: value of %d bytes exceeds the limit of %d", ErrMalformed, i, vl, lim.MaxValueBytes)
		}
		b = b[k:]
		if e.Tombstone && vl != 0 {
			return nil, fmt.Errorf("%w: entry %d: tombstone with a value", ErrMalformed, i)
		}
		e.Value = b[:vl:vl]
		b = b[vl:]
		out = append(out, e)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(b))
	}
	return out, nil
}

// AppendResults encodes per-entry import results.
func AppendResults(dst []byte, res []kv.ImportResult) []byte {
	dst = append(dst, resultMagic...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(res)))
	for _, r := range res {
		dst = append(dst, byte(r))
	}
	return dst
}

// DecodeResults parses AppendResults output and checks it answers want
// entries.
func DecodeResults(b []byte, want int) ([]kv.ImportResult, error) {
	if len(b) < len(resultMagic)+4 || string(b[:len(resultMagic)]) != resultMagic {
		return nil, fmt.Errorf("%w: missing result header", ErrMalformed)
	}
	n := int(binary.BigEndian.Uint32(b[len(resultMagic):]))
	b = b[len(resultMagic)+4:]
	if n != want || len(b) != n {
		return nil, fmt.Errorf("%w: %d results for %d entries", ErrMalformed, len(b), want)
	}
	out := make([]kv.ImportResult, n)
	for i, r := range b {
		if kv.ImportResult(r) < kv.Acked || kv.ImportResult(r) > kv.Refused {
			return nil, fmt.Errorf("%w: result %d: unknown code %d", ErrMalformed, i, r)
		}
		out[i] = kv.ImportResult(r)
	}
	return out, nil
}
