package membership

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// seedAddr is one parsed entry of Config.Seeds.
type seedAddr struct {
	raw  string
	host string     // host name, when ip is not valid
	ip   netip.Addr // set when the seed is an IP literal
	port uint16
}

// parseSeed accepts "host:port", "host", "ip:port", "ip", "[ipv6]:port" and
// "[ipv6]"; the port defaults to DefaultSeedPort.
func parseSeed(raw string) (seedAddr, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return seedAddr{}, errors.New("empty seed address")
	}
	host, portStr, err := net.SplitHostPort(s)
	if err == nil && portStr == "" {
		return seedAddr{}, errors.New("empty port")
	}
	if err != nil {
		// No port: a bare host name or IP (an IPv6 literal maybe bracketed).
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
		if strings.Contains(host, ":") {
			if _, perr := netip.ParseAddr(host); perr != nil {
				return seedAddr{}, fmt.Errorf("want host, host:port or ip:port: %w", err)
			}
		}
	}
	if host == "" {
		return seedAddr{}, errors.New("empty host")
	}
	sa := seedAddr{raw: raw, host: host, port: DefaultSeedPort}
	if portStr != "" {
		p, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || p == 0 {
			return seedAddr{}, fmt.Errorf("bad port %q", portStr)
		}
		sa.port = uint16(p)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		sa.ip = ip.Unmap()
		sa.host = ""
	}
	return sa, nil
}

// resolveSeeds resolves every seed afresh (DNS answers change as replicas come
// and go) and returns the distinct gossip addresses to join, without this
// node's own addresses. Names resolving to addresses of both families keep
// only those of the advertise address's family. The error reports the seeds
// that did not resolve; the addresses of the others are returned anyway.
func (m *Membership) resolveSeeds(ctx context.Context) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	seen := make(map[netip.AddrPort]bool)
	var errs []error
	add := func(ap netip.AddrPort) {
		if seen[ap] || m.isSelf(ap) {
			return
		}
		seen[ap] = true
		out = append(out, ap)
	}
	for _, sa := range m.set.seeds {
		if sa.ip.IsValid() {
			add(netip.AddrPortFrom(sa.ip, sa.port))
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, resolveTimeout)
		ips, err := m.set.resolver.LookupNetIP(lctx, "ip", sa.host)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("resolve seed %q: %w", sa.raw, err))
			continue
		}
		same := make([]netip.Addr, 0, len(ips))
		for _, ip := range ips {
			ip = ip.Unmap()
			if ip.Is4() == m.set.advIP.Is4() {
				same = append(same, ip)
			}
		}
		if len(same) > 0 {
			ips = same
		}
		for _, ip := range ips {
			add(netip.AddrPortFrom(ip.Unmap(), sa.port))
		}
	}
	return out, errors.Join(errs...)
}

// isSelf reports whether ap reaches this node's own gossip listener.
func (m *Membership) isSelf(ap netip.AddrPort) bool {
	if ap == m.advAddr {
		return true
	}
	if int(ap.Port()) != m.bindPort {
		return false
	}
	ip := ap.Addr()
	if !m.set.bindIP.IsUnspecified() {
		return ip == m.set.bindIP
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	_, ok := m.set.localIPs[ip]
	return ok
}
