package main

import (
	"log/slog"
	"runtime/debug"

	"github.com/peercache/peercache/node"
)

// The process's Go memory limit (runtime/debug.SetMemoryLimit) comes from
// the node's memory budget (--memory-max-bytes), which covers the in-memory
// shard and the local tier: the limit is the budget plus a quarter of it
// for the garbage collector's headroom and request buffers, plus 32 MiB for
// the runtime, memberlist and the rest of the process (352 MiB with the
// default budget of 256 MiB). Near the limit the collector runs more often
// instead of letting the heap double; it is a soft limit, never a cause of
// failure. A GOMEMLIMIT in the environment wins (the runtime has applied
// it already).

// memoryLimitBase is the fixed part of the limit above the budget.
const memoryLimitBase = 32 << 20

// memoryLimit returns the Go memory limit for a budget (0: the default).
func memoryLimit(budget int64) int64 {
	if budget <= 0 {
		budget = node.DefaultMemoryMaxBytes
	}
	return budget + budget/4 + memoryLimitBase
}

// setMemoryLimit applies memoryLimit(budget) unless goMemLimit (the
// GOMEMLIMIT environment variable) is set; it returns the limit in force.
func setMemoryLimit(budget int64, goMemLimit string, log *slog.Logger) int64 {
	if goMemLimit != "" {
		limit := debug.SetMemoryLimit(-1) // (a negative value only reads it)
		log.Info("memory: GOMEMLIMIT is set; the Go memory limit is left as it is", "limit_bytes", limit)
		return limit
	}
	limit := memoryLimit(budget)
	debug.SetMemoryLimit(limit)
	log.Info("memory: Go memory limit set from the memory budget", "budget_bytes", budget, "limit_bytes", limit)
	return limit
}
