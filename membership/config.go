package membership

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultSeedPort is the gossip port assumed for a seed given without one.
const DefaultSeedPort = 7946

// Defaults applied by New for zero-valued Config fields.
const (
	DefaultDebounce       = 200 * time.Millisecond
	DefaultRejoinInterval = 30 * time.Second
	// DefaultLeaveTimeout is used by Leave when given a non-positive timeout.
	DefaultLeaveTimeout = 5 * time.Second
)

const (
	joinBackoffMin    = 100 * time.Millisecond
	joinBackoffMax    = 2 * time.Second
	resolveTimeout    = 3 * time.Second
	metaUpdateTimeout = 5 * time.Second
)

// Timing selects memberlist's failure-detection and gossip timing.
type Timing int

const (
	// TimingLAN is memberlist's DefaultLANConfig: 1s probe interval, 500ms
	// probe timeout, suspicion multiplier 4, 200ms gossip, 30s push/pull.
	TimingLAN Timing = iota
	// TimingFast is for tests and small local clusters: DefaultLANConfig with
	// 200ms probe interval, 100ms probe timeout, suspicion multiplier 3
	// (suspicion max timeout multiplier 3), 50ms gossip interval, 3s push/pull
	// interval, 3s gossip-to-the-dead time and 2s TCP timeout. A crashed
	// member of a 3-node cluster is removed after about 1 s (at most ~2.5 s).
	TimingFast
)

// String returns the profile's name.
func (t Timing) String() string {
	switch t {
	case TimingLAN:
		return "lan"
	case TimingFast:
		return "fast"
	default:
		return fmt.Sprintf("Timing(%d)", int(t))
	}
}

// memberlistConfig returns memberlist's base configuration for the profile.
func (t Timing) memberlistConfig() (*memberlist.Config, error) {
	switch t {
	case TimingLAN:
		return memberlist.DefaultLANConfig(), nil
	case TimingFast:
		c := memberlist.DefaultLANConfig()
		c.TCPTimeout = 2 * time.Second
		c.ProbeInterval = 200 * time.Millisecond
		c.ProbeTimeout = 100 * time.Millisecond
		c.SuspicionMult = 3
		c.SuspicionMaxTimeoutMult = 3
		c.GossipInterval = 50 * time.Millisecond
		c.PushPullInterval = 3 * time.Second
		c.GossipToTheDeadTime = 3 * time.Second
		return c, nil
	default:
		return nil, fmt.Errorf("Timing: unknown profile %d", int(t))
	}
}

// Resolver looks up the IP addresses of a host name. *net.Resolver
// implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Membership.
type Config struct {
	// Name is the unique node name; required.
	Name string
	// BindAddr is the IP address gossip binds to; "" means 0.0.0.0.
	BindAddr string
	// BindPort is the gossip port (TCP and UDP); 0 picks a free port, which
	// Membership.BindPort reports afterwards.
	BindPort int
	// AdvertiseAddr is the host or IP other members use to reach this node.
	// If empty: BindAddr when it is a specific IP; else the local address of
	// the route to the first seed; else the first non-loopback IPv4 address
	// the host name (os.Hostname) resolves to; else, for a node without
	// seeds, 127.0.0.1 (logged at INFO); else New fails with an error
	// wrapping ErrNoAdvertiseAddr.
	AdvertiseAddr string
	// AdvertisePort is the advertised gossip port; 0 means the bound port.
	// It cannot be set together with BindPort 0.
	AdvertisePort int
	// Seeds are the addresses joined by Start: "host:port", "host" (port
	// DefaultSeedPort) or "ip:port". A name resolving to several IPs joins
	// all of them; addresses of this node itself are skipped.
	Seeds []string
	// ClusterLabel is memberlist's Label: nodes with different labels never
	// talk to each other. At most 255 bytes.
	ClusterLabel string
	// SecretKey optionally enables gossip encryption; 16, 24 or 32 bytes
	// (AES-128, -192 or -256).
	SecretKey []byte
	// Meta is the initial metadata. An empty State means StateJoining and a
	// zero Proto means ProtocolVersion.
	Meta Meta
	// Debounce is the coalescing delay for member-set updates; 0 means
	// DefaultDebounce.
	Debounce time.Duration
	// RejoinInterval is how often the seeds are re-resolved and any seed
	// address that is not a member is joined again (heals partitions);
	// 0 means DefaultRejoinInterval, negative disables the periodic re-join
	// (the background search for a first seed after a failed Start attempt
	// still runs until some seed answers).
	RejoinInterval time.Duration
	// JoinTimeout bounds Start. If > 0, Start retries joining with backoff and
	// fails when no seed answered within JoinTimeout. If 0, Start makes one
	// attempt and, if no seed answered, logs a warning, returns nil and keeps
	// retrying in the background. Negative values are invalid.
	JoinTimeout time.Duration
	// Timing is the memberlist timing profile.
	Timing Timing
	// Logger receives the package's logs; memberlist's own log lines are
	// forwarded to it at debug level. nil discards everything.
	Logger *slog.Logger
	// Resolver resolves seed and advertise host names; nil means
	// net.DefaultResolver.
	Resolver Resolver

	// route replaces localRoute in this package's tests.
	route func(netip.AddrPort) (netip.Addr, error)
}

// settings is a validated, normalized Config plus derived values.
type settings struct {
	cfg      Config
	metaRaw  []byte
	bindIP   netip.Addr
	advIP    netip.Addr
	seeds    []seedAddr
	resolver Resolver
	localIPs map[netip.Addr]struct{} // only when bindIP is unspecified
	// advNote, when set, is logged at INFO by New: how the advertised
	// address was chosen when nothing better was found (loopback).
	advNote string
	// hostname and route are os.Hostname and localRoute (Config.route in
	// tests).
	hostname func() (string, error)
	route    func(netip.AddrPort) (netip.Addr, error)
}

// validate checks c and fills in defaults. The errors name the bad option.
func (c Config) validate() (*settings, error) {
	s := &settings{cfg: c}
	cfg := &s.cfg
	if cfg.Name == "" {
		return nil, errors.New("Name: required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s.resolver = cfg.Resolver
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	s.hostname, s.route = os.Hostname, localRoute
	if cfg.route != nil {
		s.route = cfg.route
	}

	if cfg.BindAddr == "" {
		cfg.BindAddr = "0.0.0.0"
	}
	ip, err := netip.ParseAddr(cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("BindAddr %q: must be an IP address: %w", cfg.BindAddr, err)
	}
	s.bindIP = ip.Unmap()
	if cfg.BindPort < 0 || cfg.BindPort > 65535 {
		return nil, fmt.Errorf("BindPort %d: out of range 0-65535", cfg.BindPort)
	}
	if cfg.AdvertisePort < 0 || cfg.AdvertisePort > 65535 {
		return nil, fmt.Errorf("AdvertisePort %d: out of range 0-65535", cfg.AdvertisePort)
	}
	if cfg.AdvertisePort != 0 && cfg.BindPort == 0 {
		return nil, fmt.Errorf("AdvertisePort %d: requires a fixed BindPort (BindPort is 0)", cfg.AdvertisePort)
	}

	if len(cfg.ClusterLabel) > memberlist.LabelMaxSize {
		return nil, fmt.Errorf("ClusterLabel: %d bytes, limit is %d", len(cfg.ClusterLabel), memberlist.LabelMaxSize)
	}
	if len(cfg.SecretKey) > 0 {
		if l := len(cfg.SecretKey); l != 16 && l != 24 && l != 32 {
			return nil, fmt.Errorf("SecretKey: %d bytes, must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256)", l)
		}
		cfg.SecretKey = bytes.Clone(cfg.SecretKey)
	}

	cfg.Meta = cfg.Meta.Clone()
	if cfg.Meta.State == "" {
		cfg.Meta.State = StateJoining
	}
	if cfg.Meta.Proto == 0 {
		cfg.Meta.Proto = ProtocolVersion
	}
	if s.metaRaw, err = validateMeta("Meta", cfg.Meta); err != nil {
		return nil, err
	}

	switch {
	case cfg.Debounce < 0:
		return nil, fmt.Errorf("Debounce %s: must not be negative", cfg.Debounce)
	case cfg.Debounce == 0:
		cfg.Debounce = DefaultDebounce
	}
	if cfg.RejoinInterval == 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	if cfg.JoinTimeout < 0 {
		return nil, fmt.Errorf("JoinTimeout %s: must not be negative (0 means retry in the background)", cfg.JoinTimeout)
	}
	if _, err := cfg.Timing.memberlistConfig(); err != nil {
		return nil, err
	}

	cfg.Seeds = append([]string(nil), cfg.Seeds...)
	for i, raw := range cfg.Seeds {
		sa, err := parseSeed(raw)
		if err != nil {
			return nil, fmt.Errorf("Seeds[%d] %q: %w", i, raw, err)
		}
		s.seeds = append(s.seeds, sa)
	}

	if s.advIP, err = s.advertiseIP(); err != nil {
		return nil, err
	}
	if s.bindIP.IsUnspecified() {
		s.localIPs = localInterfaceIPs()
	}
	return s, nil
}

// ErrNoAdvertiseAddr is wrapped by New's error when AdvertiseAddr is empty,
// the bind address is unspecified, and no address other members could use
// can be found (the seeds cannot be routed to, and the host name resolves
// only to loopback). The caller should ask the user to set AdvertiseAddr.
var ErrNoAdvertiseAddr = errors.New("no address to advertise to other members")

// AdvertiseError is the error New returns (wrapped) when it finds no
// address to advertise; it matches ErrNoAdvertiseAddr with errors.Is.
type AdvertiseError struct {
	// Reasons says what was tried and why each failed.
	Reasons []string
}

func (e *AdvertiseError) Error() string {
	return ErrNoAdvertiseAddr.Error() + ": " + strings.Join(e.Reasons, "; ")
}

// Unwrap makes errors.Is(err, ErrNoAdvertiseAddr) hold.
func (e *AdvertiseError) Unwrap() error { return ErrNoAdvertiseAddr }

// advertiseIP determines the address other members use, never guessing
// silently (memberlist would pick some private IP on its own). With
// AdvertiseAddr empty and an unspecified bind address it tries, in order:
// the local address of the route to the first seed (the interface the
// cluster is reached through), the host name's first non-loopback IPv4
// address, and, for a node with no seeds only (a cluster of its own),
// loopback, which s.advNote then reports.
func (s *settings) advertiseIP() (netip.Addr, error) {
	cfg := &s.cfg
	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	defer cancel()
	if cfg.AdvertiseAddr != "" {
		if ip, err := netip.ParseAddr(cfg.AdvertiseAddr); err == nil {
			ip = ip.Unmap()
			if ip.IsUnspecified() {
				return netip.Addr{}, fmt.Errorf("AdvertiseAddr %q: unspecified address cannot be advertised", cfg.AdvertiseAddr)
			}
			return ip, nil
		}
		ips, err := s.resolver.LookupNetIP(ctx, "ip", cfg.AdvertiseAddr)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("AdvertiseAddr %q: resolve: %w", cfg.AdvertiseAddr, err)
		}
		if ip, ok := pickAdvertise(ips, true); ok {
			return ip, nil
		}
		if ip, ok := pickAdvertise(ips, false); ok {
			return ip, nil
		}
		return netip.Addr{}, fmt.Errorf("AdvertiseAddr %q: resolves to no usable address", cfg.AdvertiseAddr)
	}
	if !s.bindIP.IsUnspecified() {
		return s.bindIP, nil
	}
	var why []string
	if len(s.seeds) > 0 {
		ip, err := s.routeToSeed(ctx, s.seeds[0])
		if err == nil {
			return ip, nil
		}
		why = append(why, err.Error())
	}
	host, err := s.hostname()
	if err != nil {
		why = append(why, fmt.Sprintf("the host name is unknown: %v", err))
	} else if ips, err := s.resolver.LookupNetIP(ctx, "ip", host); err != nil {
		why = append(why, fmt.Sprintf("host name %q does not resolve: %v", host, err))
	} else if ip, ok := pickAdvertise(ips, true); ok {
		return ip, nil
	} else {
		shown := make([]string, len(ips))
		for i, ip := range ips {
			shown[i] = ip.Unmap().String()
		}
		why = append(why, fmt.Sprintf("host name %q resolves only to %s", host, strings.Join(shown, ", ")))
	}
	if len(s.seeds) == 0 {
		lo := netip.AddrFrom4([4]byte{127, 0, 0, 1})
		s.advNote = fmt.Sprintf("advertising loopback %s: no seeds, and %s; only nodes on this host can join this one (set AdvertiseAddr to be reachable from elsewhere)",
			lo, strings.Join(why, "; "))
		return lo, nil
	}
	return netip.Addr{}, &AdvertiseError{Reasons: why}
}

// routeToSeed returns the local address of the route to seed: the address
// of the interface this host reaches the cluster through. It only asks the
// kernel (a UDP "connect" sends nothing).
func (s *settings) routeToSeed(ctx context.Context, seed seedAddr) (netip.Addr, error) {
	ip := seed.ip
	if !ip.IsValid() {
		ips, err := s.resolver.LookupNetIP(ctx, "ip", seed.host)
		if err != nil || len(ips) == 0 {
			return netip.Addr{}, fmt.Errorf("the first seed %q does not resolve: %v", seed.raw, err)
		}
		ip = ips[0].Unmap()
		for _, c := range ips { // prefer IPv4, as the rest of the package does
			if c.Unmap().Is4() {
				ip = c.Unmap()
				break
			}
		}
	}
	local, err := s.route(netip.AddrPortFrom(ip, seed.port))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("no route to the first seed %q (%s): %v", seed.raw, ip, err)
	}
	if local.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("no local address routes to the first seed %q (%s)", seed.raw, ip)
	}
	return local, nil
}

// localRoute asks the kernel which local address reaches dst.
func localRoute(dst netip.AddrPort) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.Addr{}, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// pickAdvertise returns the first non-loopback, specified address in ips,
// restricted to IPv4 when v4only.
func pickAdvertise(ips []netip.Addr, v4only bool) (netip.Addr, bool) {
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsUnspecified() || (v4only && !ip.Is4()) {
			continue
		}
		return ip, true
	}
	return netip.Addr{}, false
}

// localInterfaceIPs returns the addresses of this host's interfaces, used to
// recognise this node in the seed list when it binds to all addresses.
func localInterfaceIPs() map[netip.Addr]struct{} {
	out := make(map[netip.Addr]struct{})
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = struct{}{}
		}
	}
	return out
}

// memberlistConfig builds memberlist's configuration for m.
func (s *settings) memberlistConfig(m *Membership) *memberlist.Config {
	cfg := &s.cfg
	mc, _ := cfg.Timing.memberlistConfig() // validated already
	mc.Name = cfg.Name
	mc.BindAddr = s.bindIP.String()
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = s.advIP.String()
	mc.AdvertisePort = cfg.AdvertisePort
	if mc.AdvertisePort == 0 {
		// With BindPort 0 memberlist replaces this by the chosen port.
		mc.AdvertisePort = cfg.BindPort
	}
	mc.Label = cfg.ClusterLabel
	mc.SecretKey = cfg.SecretKey
	mc.Delegate = (*delegate)(m)
	mc.Events = (*events)(m)
	mc.Conflict = (*conflicts)(m)
	mc.LogOutput = nil
	mc.Logger = log.New(m.mlLog, "", 0)
	return mc
}
