package replica

import (
	"maps"
	"sync"
	"testing"

	"github.com/peercache/peercache/ring"
)

func TestBase(t *testing.T) {
	var b Base
	r1 := ring.New([]string{"a", "b"}, ring.Options{})
	boots1 := map[string]string{"a": "1", "b": "1"}
	// No run completed: no base ring.
	p := b.Placement("a", 2, r1, boots1)
	if p.Self != "a" || p.RF != 2 || p.Ring != r1 || !maps.Equal(p.Boots, boots1) || p.Base != nil || p.BaseBoots != nil || p.FullGen != 0 {
		t.Fatalf("first placement %+v", p)
	}
	b.Completed(p)

	// The completed run is the base of the next one.
	r2 := ring.New([]string{"a", "b", "c"}, ring.Options{})
	boots2 := map[string]string{"a": "1", "b": "1", "c": "1"}
	p = b.Placement("a", 2, r2, boots2)
	if p.Ring != r2 || p.Base != r1 || !maps.Equal(p.BaseBoots, boots1) || !maps.Equal(p.Boots, boots2) || p.FullGen != 0 {
		t.Fatalf("placement after a run %+v", p)
	}

	// A full copy is wanted: no base until a run serving it completes.
	b.WantFull()
	stale := p // planned before the request: completing it serves nothing
	full := b.Placement("a", 2, r2, boots2)
	if full.Base != nil || full.BaseBoots != nil || full.FullGen != 1 {
		t.Fatalf("full-copy placement %+v", full)
	}
	b.Completed(stale)
	if p := b.Placement("a", 2, r2, boots2); p.Base != nil || p.FullGen != 1 {
		t.Fatalf("a run that did not serve the request ended it: %+v", p)
	}
	b.WantFull() // a second request while the first is planned
	b.Completed(full)
	if p := b.Placement("a", 2, r2, boots2); p.Base != nil || p.FullGen != 2 {
		t.Fatalf("a newer request was served by an older run: %+v", p)
	}
	b.Completed(b.Placement("a", 2, r2, boots2))
	if p := b.Placement("a", 2, r2, boots2); p.Base != r2 || p.FullGen != 0 {
		t.Fatalf("after the full copy: %+v", p)
	}
}

func TestBaseConcurrent(t *testing.T) {
	var b Base
	r := ring.New([]string{"a", "b"}, ring.Options{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				b.WantFull()
				b.Completed(b.Placement("a", 2, r, nil))
			}
		})
	}
	wg.Wait()
	if p := b.Placement("a", 2, r, nil); p.Base != r || p.FullGen != 0 {
		t.Fatalf("every request served, yet %+v", p)
	}
}
