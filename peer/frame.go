package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/peercache/peercache/kv"
)

// Frames. Every message on a peer connection is one frame:
//
//	length u32 | op u8 | flags u8 | reserved u16 | id u32 | payload (length bytes)
//
// big-endian. A request carries a client-chosen id; its response carries
// the same id and op|opResponse, so responses may come back in any order
// and many requests share one connection. A request's payload starts with
// the sender's deadline (Unix milliseconds, 0: none); the server refuses a
// request whose deadline has passed, so a write the sender gave up on is
// never applied late.
const (
	headerSize = 12

	opHello      byte = 0x01 // first frame of a connection: who is calling
	opGet        byte = 0x02 // forwarded read (or replica read)
	opWrite      byte = 0x03 // forwarded write
	opHandoff    byte = 0x04 // read of a previous owner's raw entry
	opImport     byte = 0x05 // batch of entries to write if newer
	opInvalidate byte = 0x06 // keys whose near copies must go
	opPing       byte = 0x07 // liveness
	opMany       byte = 0x08 // reads and writes of distinct keys, answered together
	opWarm       byte = 0x09 // keys a previous owner found hot: load them into the local tier
	opStatus     byte = 0x0a // the node's status report (opaque bytes: JSON), for the cluster view
	opMulti      byte = 0x0b // an atomic change of several keys of one slot (MSETNX, RENAME, COPY)
	opScan       byte = 0x0c // one step of a scan of the keys the peer owns (SCAN, KEYS, DBSIZE of the cluster)
	opResponse   byte = 0x80

	flagError byte = 1 // response payload is an encoded error

	// helloMagic starts a hello payload; the digit is the protocol version.
	helloMagic = "PCP1"
	// maxHelloFrame bounds every frame a connection may send before its
	// hello was accepted: an unauthenticated caller cannot make the server
	// allocate more.
	maxHelloFrame = 4 << 10
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed peer message")

// opName names an op for metrics and logs.
func opName(op byte) string {
	switch op &^ opResponse {
	case opHello:
		return "hello"
	case opGet:
		return "get"
	case opWrite:
		return "write"
	case opHandoff:
		return "handoff"
	case opImport:
		return "import"
	case opInvalidate:
		return "invalidate"
	case opPing:
		return "ping"
	case opMany:
		return "many"
	case opWarm:
		return "warm"
	case opStatus:
		return "status"
	case opMulti:
		return "multi"
	case opScan:
		return "scan"
	default:
		return "unknown"
	}
}

// header is a decoded frame header.
type header struct {
	length uint32
	op     byte
	flags  byte
	id     uint32
}

// appendHeader starts a frame; finishFrame fills in its length.
func appendHeader(b []byte, op, flags byte, id uint32) []byte {
	b = append(b, 0, 0, 0, 0, op, flags, 0, 0)
	return binary.BigEndian.AppendUint32(b, id)
}

// finishFrame writes the length of the frame that starts at b[start:].
func finishFrame(b []byte, start int) {
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-headerSize))
}

// readHeader reads a header and checks the length against limit.
func readHeader(r io.Reader, buf *[headerSize]byte, limit int) (header, error) {
	if _, err := io.ReadFull(r, buf[:]); err != nil {
		return header{}, err
	}
	h := header{
		length: binary.BigEndian.Uint32(buf[0:4]),
		op:     buf[4],
		flags:  buf[5],
		id:     binary.BigEndian.Uint32(buf[8:12]),
	}
	if int64(h.length) > int64(limit) {
		return h, fmt.Errorf("%w: %s frame of %d bytes exceeds the limit of %d", ErrMalformed, opName(h.op), h.length, limit)
	}
	return h, nil
}

// ---- request payloads ----

func appendDeadline(b []byte, dl time.Time) []byte {
	var ms uint64
	if !dl.IsZero() {
		ms = uint64(max(dl.UnixMilli(), 1))
	}
	return binary.BigEndian.AppendUint64(b, ms)
}

// takeDeadline splits the deadline off a request payload.
func takeDeadline(p []byte) (time.Time, []byte, error) {
	if len(p) < 8 {
		return time.Time{}, nil, fmt.Errorf("%w: truncated request", ErrMalformed)
	}
	ms := binary.BigEndian.Uint64(p)
	var dl time.Time
	if ms != 0 {
		if ms > 1<<62 {
			return time.Time{}, nil, fmt.Errorf("%w: bad deadline", ErrMalformed)
		}
		dl = time.UnixMilli(int64(ms))
	}
	return dl, p[8:], nil
}

// hello: magic | label length uvarint | label | name.
func appendHello(b []byte, label, name string) []byte {
	b = append(b, helloMagic...)
	b = binary.AppendUvarint(b, uint64(len(label)))
	b = append(b, label...)
	return append(b, name...)
}

func decodeHello(p []byte) (label, name string, err error) {
	if len(p) < len(helloMagic) || string(p[:len(helloMagic)]) != helloMagic {
		return "", "", fmt.Errorf("%w: not a peercache peer (or another protocol version)", ErrMalformed)
	}
	p = p[len(helloMagic):]
	l, k := binary.Uvarint(p)
	if k <= 0 || l > uint64(len(p)-k) {
		return "", "", fmt.Errorf("%w: bad hello", ErrMalformed)
	}
	label = string(p[k : k+int(l)])
	name = string(p[k+int(l):])
	if name == "" {
		return "", "", fmt.Errorf("%w: hello without a name", ErrMalformed)
	}
	return label, name, nil
}

const getReplica byte = 1 // read from the receiver's shard as a replica

// get request: flags u8 | key.
func appendGet(b []byte, key string, replica bool) []byte {
	var f byte
	if replica {
		f = getReplica
	}
	return append(append(b, f), key...)
}

func decodeGet(p []byte, maxKey int) (key string, replica bool, err error) {
	if len(p) < 2 || p[0]&^getReplica != 0 {
		return "", false, fmt.Errorf("%w: bad get request", ErrMalformed)
	}
	if len(p)-1 > maxKey {
		return "", false, fmt.Errorf("%w: key of %d bytes exceeds the limit of %d", ErrMalformed, len(p)-1, maxKey)
	}
	return string(p[1:]), p[0] == getReplica, nil
}

const (
	itemHasTTL byte = 1
	itemOrigin byte = 2 // the owner loaded the value from its read-through origin for this read
	// maxTTLMillis is the longest lifetime a frame may carry: what a
	// time.Duration holds (about 292 years).
	maxTTLMillis = uint64(math.MaxInt64 / int64(time.Millisecond))
)

// get response: flags u8 | version u64 | ttl ms uvarint (if itemHasTTL) |
// near ttl ms uvarint | value. The expiry travels as the time left, counted
// by the receiver from before it sent the request.
func appendItem(b []byte, it kv.Item, nearTTL time.Duration, now time.Time) []byte {
	var f byte
	var left int64
	if it.Source == kv.SourceOrigin {
		f |= itemOrigin
	}
	if !it.ExpireAt.IsZero() {
		f |= itemHasTTL
		left = max(it.ExpireAt.Sub(now).Milliseconds(), 1)
	}
	b = append(b, f)
	b = binary.BigEndian.AppendUint64(b, it.Version)
	if f&itemHasTTL != 0 {
		b = binary.AppendUvarint(b, uint64(left))
	}
	b = binary.AppendUvarint(b, uint64(max(nearTTL.Milliseconds(), 0)))
	return append(b, it.Value...)
}

// decodeItem parses a get response; sent is when the request left (the
// expiry is counted from then, never later than the owner's). The value
// aliases p.
func decodeItem(p []byte, sent time.Time) (it kv.Item, nearTTL time.Duration, err error) {
	if len(p) < 9 || p[0]&^(itemHasTTL|itemOrigin) != 0 {
		return it, 0, fmt.Errorf("%w: bad item", ErrMalformed)
	}
	f := p[0]
	if f&itemOrigin != 0 {
		it.Source = kv.SourceOrigin
	}
	it.Version = binary.BigEndian.Uint64(p[1:9])
	p = p[9:]
	if f&itemHasTTL != 0 {
		ms, k := binary.Uvarint(p)
		if k <= 0 || ms == 0 || ms > maxTTLMillis {
			return it, 0, fmt.Errorf("%w: bad ttl", ErrMalformed)
		}
		it.ExpireAt = sent.Add(time.Duration(ms) * time.Millisecond)
		p = p[k:]
	}
	nms, k := binary.Uvarint(p)
	if k <= 0 || nms > 1<<40 {
		return it, 0, fmt.Errorf("%w: bad near ttl", ErrMalformed)
	}
	it.Value = p[k:len(p):len(p)]
	return it, time.Duration(nms) * time.Millisecond, nil
}

// Mutation flags of a write request.
const (
	mutDelete byte = 1 << iota
	mutExpire
	mutKeepTTL
	mutIfAbsent
	mutIfPresent
	mutOpShift = 5               // bits 5-7: the kv.Op of a read-modify-write
	mutOpMask  = 7 << mutOpShift // room for 8 operations
	mutKnown   = mutDelete | mutExpire | mutKeepTTL | mutIfAbsent | mutIfPresent | mutOpMask
)

// write request: flags u8 | expiry uvarint (expiryField: a ttl in ms or an
// absolute expiry) | key length uvarint | key | value (the operand of an
// operation; for an expiry change with conditions, the kv.ExpireCond as
// one byte, which a release before conditions refuses as malformed).
func appendWrite(b []byte, key string, m kv.Mutation) []byte {
	var f byte
	if m.Delete {
		f |= mutDelete
	}
	if m.Expire {
		f |= mutExpire
	}
	if m.KeepTTL {
		f |= mutKeepTTL
	}
	if m.IfAbsent {
		f |= mutIfAbsent
	}
	if m.IfPresent {
		f |= mutIfPresent
	}
	f |= byte(m.Op) << mutOpShift & mutOpMask
	b = append(b, f)
	b = binary.AppendUvarint(b, expiryField(m))
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	if m.Expire && m.ExpireIf != 0 {
		return append(b, byte(m.ExpireIf))
	}
	return append(b, m.Value...)
}

// expiryField is a write request's expiry: the time to live in
// milliseconds (0: none), or, for an absolute expiry (m.ExpireAt),
// maxTTLMillis + 1 + its Unix millisecond. A release that knew only the
// first form refuses the second as a bad ttl, so a node of such a release
// answers an error rather than mistake an instant for a lifetime.
func expiryField(m kv.Mutation) uint64 {
	if !m.ExpireAt.IsZero() {
		return maxTTLMillis + 1 + uint64(min(max(m.ExpireAt.UnixMilli(), 1), int64(maxTTLMillis)))
	}
	return uint64(max(m.TTL.Milliseconds(), 0))
}

// decodeWrite parses a write request; the value aliases p.
func decodeWrite(p []byte, maxKey, maxValue int) (key string, m kv.Mutation, err error) {
	if len(p) < 1 || p[0]&^mutKnown != 0 {
		return "", m, fmt.Errorf("%w: bad write request", ErrMalformed)
	}
	f := p[0]
	p = p[1:]
	ttl, k := binary.Uvarint(p)
	if k <= 0 || ttl > 2*maxTTLMillis+1 {
		return "", m, fmt.Errorf("%w: bad ttl", ErrMalformed)
	}
	var at time.Time
	if ttl > maxTTLMillis {
		if at = time.UnixMilli(int64(ttl - maxTTLMillis - 1)); at.UnixMilli() <= 0 {
			return "", m, fmt.Errorf("%w: bad absolute expiry", ErrMalformed)
		}
		ttl = 0
	}
	p = p[k:]
	kl, k := binary.Uvarint(p)
	if k <= 0 || kl == 0 || kl > uint64(len(p)-k) {
		return "", m, fmt.Errorf("%w: bad key length", ErrMalformed)
	}
	if kl > uint64(maxKey) {
		return "", m, fmt.Errorf("%w: key of %d bytes exceeds the limit of %d", ErrMalformed, kl, maxKey)
	}
	key = string(p[k : k+int(kl)])
	val := p[k+int(kl):]
	if len(val) > maxValue {
		return "", m, fmt.Errorf("%w: value of %d bytes exceeds the limit of %d", ErrMalformed, len(val), maxValue)
	}
	m = kv.Mutation{
		TTL: time.Duration(ttl) * time.Millisecond, ExpireAt: at, Delete: f&mutDelete != 0, Expire: f&mutExpire != 0,
		KeepTTL: f&mutKeepTTL != 0, IfAbsent: f&mutIfAbsent != 0, IfPresent: f&mutIfPresent != 0,
		Op: kv.Op(f&mutOpMask) >> mutOpShift,
	}
	if m.Op >= kv.NumOps {
		return "", m, fmt.Errorf("%w: unknown write operation", ErrMalformed)
	}
	switch {
	case !m.Delete && !m.Expire:
		m.Value = val[:len(val):len(val)]
	case m.Expire && len(val) == 1 && val[0] != 0 && kv.ExpireCond(val[0])&^kv.ExpireConds == 0:
		m.ExpireIf = kv.ExpireCond(val[0])
	case len(val) != 0:
		return "", m, fmt.Errorf("%w: delete or expiry change with a value", ErrMalformed)
	}
	return key, m, nil
}

const (
	resApplied byte = 1
	resExisted byte = 2
	resValue   byte = 4
)

// write response: flags u8 | version u64.
// write result: flags u8 | version u64 | the new value, when the flags say
// so (the answer to a read-modify-write: INCR replies with the sum).
func appendWriteResult(b []byte, r kv.WriteResult, withValue bool) []byte {
	var f byte
	if r.Applied {
		f |= resApplied
	}
	if r.Existed {
		f |= resExisted
	}
	if withValue {
		f |= resValue
	}
	b = binary.BigEndian.AppendUint64(append(b, f), r.Version)
	if withValue {
		b = append(b, r.Value...)
	}
	return b
}

// decodeWriteResult parses a write result into the result of a write of
// key; the value aliases p.
func decodeWriteResult(p []byte, key string) (kv.WriteResult, error) {
	if len(p) < 9 || p[0]&^(resApplied|resExisted|resValue) != 0 || (p[0]&resValue == 0 && len(p) != 9) {
		return kv.WriteResult{}, fmt.Errorf("%w: bad write result", ErrMalformed)
	}
	r := kv.WriteResult{Item: kv.Item{Key: key, Version: binary.BigEndian.Uint64(p[1:])}, Applied: p[0]&resApplied != 0, Existed: p[0]&resExisted != 0}
	if p[0]&resValue != 0 {
		r.Value = p[9:len(p):len(p)]
	}
	return r, nil
}

// multi request: kind u8 | key count uvarint | (length uvarint | key)* |
// value count uvarint | (length uvarint | value)*.
func appendMulti(b []byte, m kv.Multi) []byte {
	b = appendKeys(append(b, byte(m.Kind)), m.Keys)
	b = binary.AppendUvarint(b, uint64(len(m.Values)))
	for _, v := range m.Values {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}

// decodeMulti parses a multi request: a known kind, two keys and no
// values for renames and copies, a value per key for MSETNX, every key
// and value within its limit. Values alias p.
func decodeMulti(p []byte, maxKey, maxValue int) (kv.Multi, error) {
	if len(p) < 1 || p[0] == 0 || kv.MultiKind(p[0]) >= kv.NumMultiKinds {
		return kv.Multi{}, fmt.Errorf("%w: unknown multi-key change", ErrMalformed)
	}
	m := kv.Multi{Kind: kv.MultiKind(p[0])}
	p = p[1:]
	n, k := binary.Uvarint(p)
	// Every key takes at least two bytes, so a count beyond len(p)/2
	// cannot be honest: no allocation beyond what the frame holds.
	if k <= 0 || n == 0 || n > uint64(len(p)/2) || (m.Pairs() && n != 2) {
		return kv.Multi{}, fmt.Errorf("%w: bad multi key count", ErrMalformed)
	}
	p = p[k:]
	m.Keys = make([]string, n)
	for i := range m.Keys {
		kl, k := binary.Uvarint(p)
		if k <= 0 || kl == 0 || kl > uint64(len(p)-k) || kl > uint64(maxKey) {
			return kv.Multi{}, fmt.Errorf("%w: bad multi key", ErrMalformed)
		}
		m.Keys[i] = string(p[k : k+int(kl)])
		p = p[k+int(kl):]
	}
	nv, k := binary.Uvarint(p)
	if k <= 0 || (m.Pairs() && nv != 0) || (!m.Pairs() && nv != n) {
		return kv.Multi{}, fmt.Errorf("%w: bad multi value count", ErrMalformed)
	}
	p = p[k:]
	if nv > 0 {
		m.Values = make([][]byte, nv)
	}
	for i := range m.Values {
		vl, k := binary.Uvarint(p)
		if k <= 0 || vl > uint64(len(p)-k) || vl > uint64(maxValue) {
			return kv.Multi{}, fmt.Errorf("%w: bad multi value", ErrMalformed)
		}
		m.Values[i] = p[k : k+int(vl) : k+int(vl)]
		p = p[k+int(vl):]
	}
	if len(p) != 0 {
		return kv.Multi{}, fmt.Errorf("%w: trailing bytes after a multi request", ErrMalformed)
	}
	return m, nil
}

// multi result: flags u8 (resApplied, resExisted: the source was live).
func appendMultiResult(b []byte, r kv.MultiResult) []byte {
	var f byte
	if r.Applied {
		f |= resApplied
	}
	if r.SourceExisted {
		f |= resExisted
	}
	return append(b, f)
}

func decodeMultiResult(p []byte) (kv.MultiResult, error) {
	if len(p) != 1 || p[0]&^(resApplied|resExisted) != 0 {
		return kv.MultiResult{}, fmt.Errorf("%w: bad multi result", ErrMalformed)
	}
	return kv.MultiResult{Applied: p[0]&resApplied != 0, SourceExisted: p[0]&resExisted != 0}, nil
}

// MaxScanCount bounds the keys one scan request asks for; an answer may
// hold up to maxScanAnswerKeys (a shard's scan step may return more keys
// than asked, as Redis' SCAN may).
const (
	MaxScanCount      = 4096
	maxScanAnswerKeys = 8 * MaxScanCount
)

// scan request: cursor u64 | count uvarint.
func appendScan(b []byte, cursor uint64, count int) []byte {
	return binary.AppendUvarint(binary.BigEndian.AppendUint64(b, cursor), uint64(count))
}

func decodeScan(p []byte) (cursor uint64, count int, err error) {
	if len(p) < 9 {
		return 0, 0, fmt.Errorf("%w: bad scan request", ErrMalformed)
	}
	n, k := binary.Uvarint(p[8:])
	if k <= 0 || 8+k != len(p) || n == 0 || n > MaxScanCount {
		return 0, 0, fmt.Errorf("%w: bad scan count", ErrMalformed)
	}
	return binary.BigEndian.Uint64(p), int(n), nil
}

// invalidate request: count uvarint | (length uvarint | key)*.
func appendKeys(b []byte, keys []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	return b
}

func decodeKeys(p []byte, maxKeys, maxKey int) ([]string, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad key count", ErrMalformed)
	}
	if n > uint64(maxKeys) || n > uint64(len(p)) {
		return nil, fmt.Errorf("%w: %d keys exceed the limit of %d", ErrMalformed, n, maxKeys)
	}
	p = p[k:]
	keys := make([]string, 0, n)
	for i := uint64(0); i < n; i++ {
		l, k := binary.Uvarint(p)
		if k <= 0 || l == 0 || l > uint64(maxKey) || l > uint64(len(p)-k) {
			return nil, fmt.Errorf("%w: key %d: bad length", ErrMalformed, i)
		}
		keys = append(keys, string(p[k:k+int(l)]))
		p = p[k+int(l):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last key", ErrMalformed, len(p))
	}
	return keys, nil
}

// Error flags.
const (
	errRetryable byte = 1 << iota
	errReadOnly
)

// error response: status u16 | flags u8 | owner length uvarint | owner |
// message.
func appendError(b []byte, e *kv.Error) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(e.Status))
	var f byte
	if e.Retryable {
		f |= errRetryable
	}
	if e.ReadOnly {
		f |= errReadOnly
	}
	b = append(b, f)
	b = binary.AppendUvarint(b, uint64(len(e.Owner)))
	b = append(b, e.Owner...)
	return append(b, e.Message...)
}

func decodeError(p []byte) (*kv.Error, error) {
	if len(p) < 4 || p[2]&^(errRetryable|errReadOnly) != 0 {
		return nil, fmt.Errorf("%w: bad error", ErrMalformed)
	}
	e := &kv.Error{Status: int(binary.BigEndian.Uint16(p)), Retryable: p[2]&errRetryable != 0, ReadOnly: p[2]&errReadOnly != 0}
	if e.Status < 400 || e.Status > 599 {
		return nil, fmt.Errorf("%w: error status %d", ErrMalformed, e.Status)
	}
	p = p[3:]
	l, k := binary.Uvarint(p)
	if k <= 0 || l > uint64(len(p)-k) {
		return nil, fmt.Errorf("%w: bad error owner", ErrMalformed)
	}
	e.Owner = string(p[k : k+int(l)])
	e.Message = string(p[k+int(l):])
	return e, nil
}

// A many request carries sub-requests, each a get or write payload:
//
//	count uvarint | (op u8 | length uvarint | payload)*
//
// and its answer one sub-answer per sub-request, in order:
//
//	count uvarint | (flags u8 | length uvarint | payload)*
//
// where flags has flagError for an encoded error. maxMany bounds the count.
const maxMany = 1024

func appendSub(b []byte, op byte, payload func([]byte) []byte) []byte {
	b = append(b, op)
	// The length is not known until the payload is appended: leave room
	// for a 3-byte uvarint (payloads stay below 2 MiB), then fix it.
	at := len(b)
	b = append(b, 0, 0, 0)
	b = payload(b)
	n := len(b) - at - 3
	if n >= 1<<21 { // too long for the room left: move the payload
		tail := append([]byte(nil), b[at+3:]...)
		return append(binary.AppendUvarint(b[:at], uint64(n)), tail...)
	}
	b[at], b[at+1], b[at+2] = byte(n)|0x80, byte(n>>7)|0x80, byte(n>>14)
	return b
}

// sub is one decoded sub-request or sub-answer.
type sub struct {
	op      byte // request: opGet or opWrite; answer: flags
	payload []byte
}

func decodeSubs(p []byte, maxBytes int) ([]sub, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n == 0 || n > maxMany || n > uint64(len(p)) {
		return nil, fmt.Errorf("%w: bad many count", ErrMalformed)
	}
	p = p[k:]
	out := make([]sub, 0, n)
	for i := uint64(0); i < n; i++ {
		if len(p) < 1 {
			return nil, fmt.Errorf("%w: many: truncated", ErrMalformed)
		}
		op := p[0]
		l, k := binary.Uvarint(p[1:])
		if k <= 0 || l > uint64(len(p)-1-k) || l > uint64(maxBytes) {
			return nil, fmt.Errorf("%w: many: bad length", ErrMalformed)
		}
		out = append(out, sub{op: op, payload: p[1+k : 1+k+int(l) : 1+k+int(l)]})
		p = p[1+k+int(l):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("%w: many: %d trailing bytes", ErrMalformed, len(p))
	}
	return out, nil
}
