package store

// SweeperDone exposes, to the external tests, the channel the Memory store's
// sweeper closes when it returns.
func SweeperDone(m *Memory) <-chan struct{} { return m.sweepDone }
