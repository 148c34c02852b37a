package kv

// MultiKind says what a Multi does.
type MultiKind uint8

// Multi-key changes (Redis semantics).
const (
	// MultiMSetNX sets every key to its value, only if none of them is
	// live (Redis MSETNX); a key named twice takes its last value.
	MultiMSetNX MultiKind = iota + 1
	// MultiRename moves the source's value and expiry to the destination,
	// replacing it, and deletes the source (Redis RENAME).
	MultiRename
	// MultiRenameNX is MultiRename only if the destination is not live
	// (Redis RENAMENX).
	MultiRenameNX
	// MultiCopy copies the source's value and expiry to the destination,
	// only if the destination is not live (Redis COPY).
	MultiCopy
	// MultiCopyReplace copies, replacing the destination (Redis COPY
	// REPLACE).
	MultiCopyReplace
	// NumMultiKinds bounds the kinds (for decoders' bounds checks).
	NumMultiKinds
)

// Multi is one atomic change of several keys of one slot, carried out by
// the slot's owner under every key's lock; each key's write is versioned
// and replicated as any write. Keys must hash to one slot (ring.Slot), so
// that one owner holds them all, in every view of the ring.
type Multi struct {
	Kind MultiKind
	// Keys: for MultiMSetNX the keys to set; for the renames and copies
	// the source, then the destination.
	Keys []string
	// Values: for MultiMSetNX one per key; nil otherwise.
	Values [][]byte
}

// Pairs reports whether m's kind works on a source and a destination
// (renames and copies) rather than on a list of keys with values.
func (m Multi) Pairs() bool { return m.Kind != MultiMSetNX }

// MultiResult tells what a Multi did.
type MultiResult struct {
	// Applied: the change was made (MSETNX, RENAMENX and COPY answer 1).
	// A RENAME of a key onto itself is applied without a write.
	Applied bool
	// SourceExisted, for renames and copies: the source was live (RENAME
	// of a missing key is an error, "no such key").
	SourceExisted bool
}
