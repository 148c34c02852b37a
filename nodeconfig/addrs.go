package nodeconfig

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/peercache/peercache/peer"
)

// Bind is where a node's gossip listens and what it announces, parsed from
// Config (Gossip.Addr, Gossip.Advertise).
type Bind struct {
	GossipHost    string
	GossipPort    int
	AdvertiseHost string // "" : memberlist picks (see Gossip.Advertise)
	AdvertisePort int    // 0: the bound port
}

// Bind parses the gossip bind and advertise addresses and refuses gossip
// or peer listeners beyond loopback while nothing authenticates members
// (see InsecureError). Call it after SetDefaults and Validate.
func (c *Config) Bind() (Bind, error) {
	var b Bind
	b.GossipHost, b.GossipPort, _ = SplitHostPort(c.Gossip.Addr)
	pHost, _, _ := SplitHostPort(c.Peer.Addr)
	if a := c.Gossip.Advertise; a != "" {
		if h, p, err := net.SplitHostPort(a); err == nil {
			port, err := strconv.Atoi(p)
			if err != nil || port <= 0 || port > 65535 {
				return b, fmt.Errorf("advertise-addr %q: bad port %q", a, p)
			}
			b.AdvertiseHost, b.AdvertisePort = h, port
		} else {
			b.AdvertiseHost = a
		}
	}
	if err := c.checkLoopback("GossipAddr", c.Gossip.Addr, b.GossipHost); err != nil {
		return b, err
	}
	return b, c.checkLoopback("PeerAddr", c.Peer.Addr, pHost)
}

// Advertised returns the HTTP and peer addresses other members use, given
// the host gossip announces (memberlist's choice when Gossip.Advertise is
// empty) and the port the peer listener got; it refuses an announced host
// beyond loopback while nothing authenticates members.
func (c *Config) Advertised(host, peerPort string) (httpAddr, peerAddr string, err error) {
	if err := c.checkLoopback("AdvertiseAddr", host, host); err != nil {
		return "", "", err
	}
	httpAddr = c.HTTP.Advertise
	if httpAddr == "" && c.HTTP.Addr != "" {
		_, port, _ := net.SplitHostPort(c.HTTP.Addr)
		httpAddr = net.JoinHostPort(host, port)
	}
	peerAddr = c.Peer.Advertise
	if peerAddr == "" {
		peerAddr = net.JoinHostPort(host, peerPort)
	}
	ph, _, _ := net.SplitHostPort(peerAddr)
	if err := c.checkLoopback("AdvertisePeer", peerAddr, ph); err != nil {
		return "", "", err
	}
	return httpAddr, peerAddr, nil
}

// AdvertisedRESP returns the RESP door's address that Redis Cluster clients
// are redirected to, given the host gossip announces: RESP.Advertise, else
// that host with the port of RESP.Addr, else "" (no door).
func (c *Config) AdvertisedRESP(host string) string {
	if c.RESP.Advertise != "" || c.RESP.Addr == "" {
		return c.RESP.Advertise
	}
	_, port, _ := net.SplitHostPort(c.RESP.Addr)
	return net.JoinHostPort(host, port)
}

// GossipKey is the key that encrypts gossip: Gossip.Key, else one derived
// from the cluster secret, else none.
func (c *Config) GossipKey() ([]byte, error) {
	if len(c.Gossip.Key) > 0 || len(c.Auth.Secret) == 0 {
		return c.Gossip.Key, nil
	}
	return peer.DeriveKey(c.Auth.Secret, "gossip encryption", 32)
}

// InsecureError is returned by node.New when an address other hosts could
// reach would carry gossip or the peer protocol without authentication (no
// cluster secret, no peer certificates, and Auth.Insecure not set).
type InsecureError struct {
	// Field is the Config field holding the address (GossipAddr, PeerAddr,
	// AdvertiseAddr, AdvertisePeer).
	Field string
	Addr  string
}

func (e *InsecureError) Error() string {
	return fmt.Sprintf("%s %s reaches beyond loopback, and no cluster secret is set: anyone who can reach it could join the cluster and read or change any key", e.Field, e.Addr)
}

// checkLoopback refuses a non-loopback address when nothing authenticates
// members. host may be a name (resolved by the caller) or an IP.
func (c *Config) checkLoopback(field, addr, host string) error {
	if c.PeerAuth().Enabled() || c.Auth.Insecure {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap().IsLoopback() {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	return &InsecureError{Field: field, Addr: addr}
}

// SplitHostPort parses host:port where the port is numeric (0 to 65535).
func SplitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return h, port, nil
}

// ParseGossipKey accepts a gossip key file's content: 16, 24 or 32 raw
// bytes, or their base64 encoding (surrounding white space ignored).
func ParseGossipKey(b []byte) ([]byte, error) {
	t := strings.TrimSpace(string(b))
	if k, err := base64.StdEncoding.DecodeString(t); err == nil && validKeyLen(len(k)) {
		return k, nil
	}
	if validKeyLen(len(t)) {
		return []byte(t), nil
	}
	if validKeyLen(len(b)) {
		return b, nil
	}
	return nil, fmt.Errorf("gossip key: want 16, 24 or 32 bytes (raw or base64), got %d bytes", len(t))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
