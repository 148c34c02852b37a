package nearcache

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// tracker is the owner's memory of which nodes fetched which keys
// recently, so that a change of a key reaches the near caches that may
// hold it. A record lives between one and two near-cache lifetimes (two
// generations of maps, rotated every lifetime): longer than any copy made
// from the read it records. It is bounded: when full, answers carry no
// near-cache permission, so nothing untracked is ever cached.
type tracker struct {
	stripes [64]trackStripe
	seedMu  sync.Mutex
	ids     map[string]uint16
	names   []string
	count   atomic.Int64
	max     int64
	refused atomic.Uint64
	ttl     time.Duration
	stopc   chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

type trackStripe struct {
	mu        sync.Mutex
	cur, prev map[string][]uint16
	_         [40]byte
}

func newTracker(ttl time.Duration, maxKeys int) *tracker {
	tr := &tracker{ids: map[string]uint16{}, max: int64(maxKeys), ttl: ttl, stopc: make(chan struct{})}
	for i := range tr.stripes {
		tr.stripes[i].cur, tr.stripes[i].prev = map[string][]uint16{}, map[string][]uint16{}
	}
	tr.wg.Add(1)
	go tr.rotateLoop()
	return tr
}

func (tr *tracker) rotateLoop() {
	defer tr.wg.Done()
	tk := time.NewTicker(tr.ttl)
	defer tk.Stop()
	for {
		select {
		case <-tr.stopc:
			return
		case <-tk.C:
		}
		for i := range tr.stripes {
			s := &tr.stripes[i]
			s.mu.Lock()
			dropped := len(s.prev)
			s.prev, s.cur = s.cur, make(map[string][]uint16, len(s.cur)/2)
			s.mu.Unlock()
			tr.count.Add(-int64(dropped))
		}
	}
}

func (tr *tracker) stop() { tr.once.Do(func() { close(tr.stopc); tr.wg.Wait() }) }

func (tr *tracker) stripe(key string) *trackStripe {
	var h uint32 = 2166136261
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * 16777619
	}
	return &tr.stripes[h&63]
}

func (tr *tracker) id(name string) (uint16, bool) {
	tr.seedMu.Lock()
	defer tr.seedMu.Unlock()
	if id, ok := tr.ids[name]; ok {
		return id, true
	}
	if len(tr.names) >= 1<<16-1 {
		return 0, false
	}
	id := uint16(len(tr.names))
	tr.ids[name] = id
	tr.names = append(tr.names, name)
	return id, true
}

func (tr *tracker) name(id uint16) string {
	tr.seedMu.Lock()
	defer tr.seedMu.Unlock()
	return tr.names[id]
}

// track records that node from is about to read key. It must be called
// before the read, and reports whether from may keep a copy.
func (tr *tracker) track(key, from string) bool {
	id, ok := tr.id(from)
	if !ok {
		tr.refused.Add(1)
		return false
	}
	s := tr.stripe(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	ids, found := s.cur[key]
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	if !found {
		if tr.count.Load() >= tr.max {
			tr.refused.Add(1)
			return false
		}
		tr.count.Add(1)
		key = strings.Clone(key)
	}
	s.cur[key] = append(ids, id)
	return true
}

// tracked reports whether some member fetched key recently.
func (tr *tracker) tracked(key string) bool {
	s := tr.stripe(key)
	s.mu.Lock()
	_, inA := s.cur[key]
	_, inB := s.prev[key]
	s.mu.Unlock()
	return inA || inB
}

// take removes and returns the nodes that fetched key recently.
func (tr *tracker) take(key string) []uint16 {
	s := tr.stripe(key)
	s.mu.Lock()
	a, inA := s.cur[key]
	b, inB := s.prev[key]
	if inA {
		delete(s.cur, key)
	}
	if inB {
		delete(s.prev, key)
	}
	s.mu.Unlock()
	if inA {
		tr.count.Add(-1)
	}
	if inB {
		tr.count.Add(-1)
	}
	out := a
	for _, x := range b {
		dup := false
		for _, y := range a {
			dup = dup || x == y
		}
		if !dup {
			out = append(out, x)
		}
	}
	return out
}
