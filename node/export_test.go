package node

// This file exposes internals of package node to its tests, which are the
// external package node_test (so that they can import packages that import
// node). It is compiled only by go test.
//
// Naming: a package-level constant, variable or type keeps its name,
// capitalised (TierLocal = tierLocal, type TierStats = tierStats); every
// accessor this file adds (methods, constructors) ends in ForTest
// (n.RingForTest() is n.views.cur.Load().ring). Each is a plain read or call of
// what it names, nothing more.

import (
	"sync/atomic"
	"time"

	"github.com/peercache/peercache/internal/hlc"
	"github.com/peercache/peercache/internal/localtier"
	"github.com/peercache/peercache/internal/rate"
	"github.com/peercache/peercache/internal/replica"
	"github.com/peercache/peercache/internal/rwmode"
	"github.com/peercache/peercache/membership"
	"github.com/peercache/peercache/migrate"
	"github.com/peercache/peercache/peer"
	"github.com/peercache/peercache/ring"
	"github.com/peercache/peercache/tier"
)

const (
	TierLocal     = localtier.Local
	TierNear      = localtier.Near
	ExtraNodeMode = rwmode.KeyNode
)

var DistinctRun = distinctRun

type (
	ReplicaPlacement = replica.Placement
	TierStats        = tierStats
)

// Node internals (fields and unexported methods); the view ones read the
// current view (n.views.cur.Load()) each call.
func (n *Node) RingForTest() *ring.Ring                      { return n.views.cur.Load().Ring }
func (n *Node) MigratingForTest() bool                       { return n.views.cur.Load().Migrating }
func (n *Node) MembersForTest() map[string]membership.Member { return n.views.cur.Load().Members }
func (n *Node) ViewVersionForTest() uint64                   { return n.views.cur.Load().Version }
func (n *Node) RingOptionsForTest() ring.Options             { return n.cfg.Ring }
func (n *Node) WarmedUpForTest(r *ring.Ring) bool            { return n.warmedUp(r) }
func (n *Node) ClockForTest() *hlc.Clock                     { return n.clock }
func (n *Node) MigratorForTest() *migrate.Migrator           { return n.mig }
func (n *Node) RepairPendingForTest() int                    { return n.repair.Pending() }
func (n *Node) RepairStatsForTest() replica.RepairStats      { return n.repair.Stats() }
func (n *Node) PeerTransportForTest() migrate.Transport      { return n.peer.members }
func (n *Node) PeerAdvertisedForTest() string                { return n.peer.advertised }
func (n *Node) PeerMetricsForTest() *peer.Metrics            { return n.peer.metrics }
func (n *Node) PeerServerForTest() *peer.Server              { return n.peer.srv }
func (n *Node) PeerRefuseForTest() *atomic.Bool              { return &n.peer.refuse }
func (n *Node) PeerClientForTest() *peer.Client              { return n.peer.client }
func (n *Node) TierEpochForTest() uint64                     { return n.reads.tier.Epoch() }
func (n *Node) TierStatsForTest() TierStats                  { return n.tierStats() }
func (n *Node) TierOwnedForTest() bool                       { return n.reads.tier.Owned() }
func (n *Node) TierGetForTest(key string, near bool) (tier.Entry, bool) {
	return n.reads.tier.Lookup(key, near)
}
func (n *Node) TierCacheForTest() tier.Cache { return n.reads.tier.Cache() }

// ClusterMode is rwmode.ClusterMode with the methods node's tests call.
type ClusterMode rwmode.ClusterMode

func ParseClusterMode(s string) (ClusterMode, bool) {
	c, ok := rwmode.ParseClusterMode(s)
	return ClusterMode(c), ok
}
func NewClusterModeForTest(mode Mode, stamp int64) ClusterMode {
	return ClusterMode{Mode: mode, Stamp: stamp}
}
func (c ClusterMode) EncodeForTest() string { return rwmode.ClusterMode(c).Encode() }
func (c ClusterMode) NewerForTest(o ClusterMode) bool {
	return rwmode.ClusterMode(c).Newer(rwmode.ClusterMode(o))
}

// RateCounter is the request-rate counter of Status (rate.Counter).
type RateCounter struct{ c rate.Counter }

func (c *RateCounter) AddForTest(now time.Time)                 { c.c.Add(now) }
func (c *RateCounter) RateForTest(now, start time.Time) float64 { return c.c.Rate(now, start) }
func (c *RateCounter) TotalForTest() uint64                     { return c.c.Total() }

func NewReplicaPlacementForTest(self string, rf int, now, base *ring.Ring, baseBoots, boots map[string]string) ReplicaPlacement {
	return replica.Placement{Self: self, RF: rf, Ring: now, Base: base, BaseBoots: baseBoots, Boots: boots}
}
