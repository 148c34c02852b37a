//go:build race

package store_test

// raceEnabled is true when the tests run with the race detector, which makes
// them roughly ten times slower; the largest tests shrink accordingly.
const raceEnabled = true
