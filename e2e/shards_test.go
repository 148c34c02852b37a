//go:build e2e

package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/peercache/peercache/ring"
)

// record is one key's record in a node's Redis, as the Redis store encodes
// it: marker 0xC7, flags (bit 0: tombstone), version, expiry, value.
type record struct {
	exists    bool
	tombstone bool
	version   uint64
	value     string
}

func (r record) String() string {
	switch {
	case !r.exists:
		return "none"
	case r.tombstone:
		return fmt.Sprintf("tombstone v%d", r.version)
	default:
		return fmt.Sprintf("%q v%d", r.value, r.version)
	}
}

// parseRecord decodes one line of redis-cli --no-raw output for a GET.
func parseRecord(line string) (record, error) {
	line = strings.TrimSpace(line)
	if line == "(nil)" {
		return record{}, nil
	}
	b, err := strconv.Unquote(line)
	if err != nil {
		return record{}, fmt.Errorf("redis-cli answered %q", line)
	}
	if len(b) < 18 || b[0] != 0xC7 {
		return record{}, fmt.Errorf("not a peercache record: %q", line)
	}
	return record{exists: true, tombstone: b[1]&1 != 0, version: binary.BigEndian.Uint64([]byte(b[2:10])), value: b[18:]}, nil
}

// shardRecords reads keys from a node's own Redis with redis-cli inside its
// container (one GET per line on stdin). An answer that does not line up
// with the keys (seen once in 2026-12: one line more than keys, cause not
// captured) is read again, once; the error names the lines that are not
// records, so that a repeat shows what redis-cli printed.
func shardRecords(ctx context.Context, c container, keys []string) (map[string]record, error) {
	recs, err := shardRecordsOnce(ctx, c, keys)
	if errors.Is(err, errMisaligned) {
		recs, err = shardRecordsOnce(ctx, c, keys)
	}
	return recs, err
}

// errMisaligned: redis-cli gave a different number of answers than keys.
var errMisaligned = errors.New("answers do not line up with the keys")

func shardRecordsOnce(ctx context.Context, c container, keys []string) (map[string]record, error) {
	var in strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&in, "GET %s\n", k)
	}
	out, err := run(ctx, composeCmd, nil, []byte(in.String()), "docker", "exec", "-i", c.ID,
		"/usr/bin/redis-cli", "-p", "6379", "--no-raw")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(keys) == 0 {
		return map[string]record{}, nil
	}
	if len(lines) != len(keys) {
		var odd []string
		for i, l := range lines {
			if _, err := parseRecord(l); err != nil && len(odd) < 3 {
				odd = append(odd, fmt.Sprintf("line %d: %q", i+1, l))
			}
		}
		return nil, fmt.Errorf("redis-cli in %s: %d answers for %d keys (lines that are no record: %v): %w",
			c.Hostname, len(lines), len(keys), odd, errMisaligned)
	}
	recs := make(map[string]record, len(keys))
	for i, k := range keys {
		r, err := parseRecord(lines[i])
		if err != nil {
			return nil, fmt.Errorf("%s in %s: %w", k, c.Hostname, err)
		}
		recs[k] = r
	}
	return recs, nil
}

// copies is the shard-level view of replication: for every key that the
// read-back found, do all of its owners (ring.Owners(key, rf)) hold it, at
// the same version?
type copies struct {
	checked, complete, missing, divergent int
	samples                               []string
}

func (c copies) String() string {
	return fmt.Sprintf("copies: keys=%d complete=%d missing_copies=%d divergent=%d", c.checked, c.complete, c.missing, c.divergent)
}

// checkCopies reads every found key from the Redis of each node and
// compares the owners' records.
func (s *suite) checkCopies(nodes []container, v *verdict) (copies, error) {
	var keys []string
	for k, o := range v.observed {
		if o.found {
			keys = append(keys, k)
		}
	}
	byNode := map[string]map[string]record{}
	for _, n := range nodes {
		recs, err := shardRecords(s.ctx, n, keys)
		if err != nil {
			return copies{}, err
		}
		byNode[n.Hostname] = recs
	}
	r := ring.New(names(nodes), ring.Options{VNodes: vnodes})
	var c copies
	for _, k := range keys {
		c.checked++
		owners := r.Owners(k, s.rf)
		var first record
		missing, divergent := false, false
		var parts []string
		for i, o := range owners {
			rec := byNode[o][k]
			parts = append(parts, o+": "+rec.String())
			if !rec.exists || rec.tombstone {
				missing = true
				continue
			}
			if i == 0 || !first.exists {
				first = rec
			} else if rec.version != first.version || rec.value != first.value {
				divergent = true
			}
		}
		switch {
		case missing:
			c.missing++
		case divergent:
			c.divergent++
		default:
			c.complete++
		}
		if (missing || divergent) && len(c.samples) < 5 {
			c.samples = append(c.samples, fmt.Sprintf("%s (read %q): %s", k, v.observed[k].value, strings.Join(parts, "; ")))
		}
	}
	return c, nil
}
