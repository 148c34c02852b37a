package membership

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"

	"github.com/hashicorp/memberlist"
)

// State is the lifecycle state a member announces in its metadata.
type State string

// Member states.
const (
	// StateJoining: the node is a member but does not yet take ownership.
	StateJoining State = "joining"
	// StateActive: the node owns its share of the ring.
	StateActive State = "active"
	// StateLeaving: the node is handing its keys off before leaving.
	StateLeaving State = "leaving"
)

// ProtocolVersion is the version of peercache's peer protocol a node speaks;
// it is announced in Meta.Proto. Version 3 added writes with an absolute
// expiry; a node sends them only to members that announce 3 or more
// (peer/member.ProtoAbsoluteExpiry). Version 4 added conditional expiry
// changes and GETSET with a set's options (peer/member.ProtoConditions).
const ProtocolVersion = 4

// MaxMetaSize is the largest encoded Meta memberlist can gossip.
const MaxMetaSize = memberlist.MetaMaxSize

// Meta is the metadata gossiped with every member. Its encoding (compact JSON
// with one-letter keys) must fit in MaxMetaSize bytes.
type Meta struct {
	// HTTPAddr is the host:port where the member's HTTP API is reachable
	// by other members (status pages).
	HTTPAddr string
	// PeerAddr is the host:port of the member's peer protocol listener
	// (forwarded requests, imports, handoff, invalidations).
	PeerAddr string
	// RESPAddr is the host:port where Redis clients reach the member's
	// Redis protocol door ("" without one): where a MOVED redirect points.
	RESPAddr string
	// State is the member's lifecycle state.
	State State
	// Proto is the peer protocol version the member speaks (ProtocolVersion).
	Proto int
	// Migrating is true while the member moves keys.
	Migrating bool
	// Extra holds small free-form fields; omitted from the encoding when empty.
	Extra map[string]string
}

// Clone returns a deep copy of m.
func (m Meta) Clone() Meta {
	m.Extra = maps.Clone(m.Extra)
	return m
}

// WithExtra returns m with the Extra field key set to value (or, with value
// "", removed). The map is replaced, never changed in place, so that Meta
// values already handed out stay unchanged; an Extra left empty is nil.
func (m Meta) WithExtra(key, value string) Meta {
	if m.Extra[key] == value {
		return m
	}
	x := maps.Clone(m.Extra)
	if x == nil {
		x = map[string]string{}
	}
	if value == "" {
		delete(x, key)
	} else {
		x[key] = value
	}
	if len(x) == 0 {
		x = nil
	}
	m.Extra = x
	return m
}

// Equal reports whether m and o carry the same values.
func (m Meta) Equal(o Meta) bool {
	return m.HTTPAddr == o.HTTPAddr && m.PeerAddr == o.PeerAddr && m.RESPAddr == o.RESPAddr && m.State == o.State && m.Proto == o.Proto &&
		m.Migrating == o.Migrating && maps.Equal(m.Extra, o.Extra)
}

// wireMeta is the on-the-wire form of Meta. Unknown keys are ignored when
// decoding so that later versions can add fields.
type wireMeta struct {
	H string            `json:"h,omitempty"`
	R string            `json:"r,omitempty"`
	C string            `json:"c,omitempty"`
	S State             `json:"s,omitempty"`
	P int               `json:"p,omitempty"`
	M bool              `json:"m,omitempty"`
	X map[string]string `json:"x,omitempty"`
}

// EncodeMeta returns the wire encoding of m, or an error if it does not fit
// in MaxMetaSize bytes.
func EncodeMeta(m Meta) ([]byte, error) {
	b, err := json.Marshal(wireMeta{H: m.HTTPAddr, R: m.PeerAddr, C: m.RESPAddr, S: m.State, P: m.Proto, M: m.Migrating, X: m.Extra})
	if err != nil {
		return nil, fmt.Errorf("encode meta: %w", err)
	}
	if len(b) > MaxMetaSize {
		return nil, fmt.Errorf("encoded meta is %d bytes, limit is %d", len(b), MaxMetaSize)
	}
	return b, nil
}

// DecodeMeta parses the wire encoding produced by EncodeMeta.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, errors.New("decode meta: empty")
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("decode meta: %w", err)
	}
	if len(w.X) == 0 {
		w.X = nil
	}
	return Meta{HTTPAddr: w.H, PeerAddr: w.R, RESPAddr: w.C, State: w.S, Proto: w.P, Migrating: w.M, Extra: w.X}, nil
}

// validateMeta checks m and returns its encoding. field names the option in
// error messages ("Config.Meta" or "SetMeta").
func validateMeta(field string, m Meta) ([]byte, error) {
	switch m.State {
	case StateJoining, StateActive, StateLeaving:
	default:
		return nil, fmt.Errorf("%s.State: unknown state %q (want %q, %q or %q)",
			field, m.State, StateJoining, StateActive, StateLeaving)
	}
	for _, a := range []struct{ name, v string }{{"HTTPAddr", m.HTTPAddr}, {"PeerAddr", m.PeerAddr}, {"RESPAddr", m.RESPAddr}} {
		if a.v != "" {
			if _, _, err := net.SplitHostPort(a.v); err != nil {
				return nil, fmt.Errorf("%s.%s %q: want host:port: %w", field, a.name, a.v, err)
			}
		}
	}
	if m.Proto < 0 {
		return nil, fmt.Errorf("%s.Proto: negative version %d", field, m.Proto)
	}
	b, err := EncodeMeta(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return b, nil
}
