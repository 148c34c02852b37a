package migrate

import "testing"

func TestStatusUnderReplicated(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Status
		want int64
	}{
		{"no run yet", Status{}, 0},
		{"running", Status{Active: true, CopyPlanned: 10, Copied: 4}, 6},
		{"running, copied past the plan", Status{Active: true, CopyPlanned: 3, Copied: 5}, 0},
		{"running after a failed run: the running one counts", Status{Active: true, CopyPlanned: 2, Copied: 1,
			Last: &Result{CopyPlanned: 9, Error: "boom"}}, 1},
		{"last run failed", Status{Last: &Result{CopyPlanned: 9, Copied: 2, Error: "boom"}}, 7},
		{"last run completed", Status{Last: &Result{CopyPlanned: 9, Copied: 2}}, 0},
	} {
		if got := tc.s.UnderReplicated(); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
