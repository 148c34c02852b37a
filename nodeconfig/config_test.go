package nodeconfig

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// SetDefaults fills a zero Config with exactly what Default holds, plus
// the derived fields; applied to Default it changes only those.
func TestDefaultsAgree(t *testing.T) {
	var zero Config
	zero.SetDefaults()
	d := Default()
	d.SetDefaults()
	if !reflect.DeepEqual(zero, d) {
		t.Fatalf("SetDefaults of a zero Config:\n%+v\nof Default():\n%+v", zero, d)
	}
	if zero.Gossip.Addr != DefaultLoopbackGossipAddr || zero.Peer.Addr != "127.0.0.1:7947" {
		t.Fatalf("derived addresses without a secret: gossip %q, peer %q", zero.Gossip.Addr, zero.Peer.Addr)
	}
	if zero.Tier.Bytes != DefaultMemoryMaxBytes/8 {
		t.Fatalf("derived tier bytes %d, want 1/8 of the budget", zero.Tier.Bytes)
	}
	secret := Config{Auth: Auth{Secret: make([]byte, 32)}}
	secret.SetDefaults()
	if secret.Gossip.Addr != DefaultGossipAddr || secret.Peer.Addr != ":7947" {
		t.Fatalf("derived addresses with a secret: gossip %q, peer %q", secret.Gossip.Addr, secret.Peer.Addr)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Name: "a"}
	ok.SetDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "name"},
		{"acks", func(c *Config) { c.Replication.WriteAcks = "most" }, "write-acks"},
		{"factor", func(c *Config) { c.Replication.Factor = 99 }, "replicas"},
		{"policy", func(c *Config) { c.Tier.Policy = "arc" }, "local-tier-policy"},
		{"jitter", func(c *Config) { c.Loader.TTLJitter = 1 }, "ttl-jitter"},
		{"gossip key", func(c *Config) { c.Gossip.Key = make([]byte, 7) }, "gossip key"},
		{"short secret", func(c *Config) { c.Auth.Secret = []byte("x") }, "cluster secret"},
		{"advertise peer", func(c *Config) { c.Peer.Advertise = "nohost" }, "advertise-peer"},
		{"peer conns", func(c *Config) { c.Peer.Conns = 65 }, "peer-conns"},
		{"http addr", func(c *Config) { c.HTTP.Addr = "127.0.0.1:0" }, "http-addr"},
		{"resp addr", func(c *Config) { c.RESP.Addr = "nonsense" }, "resp-addr"},
		{"resp advertise", func(c *Config) { c.RESP.Advertise = "nohost" }, "resp-advertise-addr"},
	} {
		cfg := ok
		c.set(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate = %v, want an error naming %q", c.name, err, c.want)
		}
	}
}

// The RESP door's advertised address: RESP.Advertise, else the gossip
// host with the bound port, else none.
func TestAdvertisedRESP(t *testing.T) {
	for _, c := range []struct{ addr, adv, want string }{
		{"", "", ""}, {"0.0.0.0:6380", "", "10.0.0.5:6380"}, {"[::]:6380", "", "10.0.0.5:6380"},
		{"0.0.0.0:6380", "cache.example:7000", "cache.example:7000"},
	} {
		cfg := Config{RESP: RESP{Addr: c.addr, Advertise: c.adv}}
		if got := cfg.AdvertisedRESP("10.0.0.5"); got != c.want {
			t.Errorf("AdvertisedRESP(%q, %q) = %q, want %q", c.addr, c.adv, got, c.want)
		}
	}
}

// Without a secret, an address beyond loopback is refused, naming the
// field; with one (or Insecure) it is allowed.
func TestLoopbackRule(t *testing.T) {
	cfg := Config{Name: "a", Gossip: Gossip{Addr: ":7946"}}
	cfg.SetDefaults()
	var ie *InsecureError
	if _, err := cfg.Bind(); !errors.As(err, &ie) || ie.Field != "GossipAddr" {
		t.Fatalf("Bind of every address without a secret: %v", err)
	}
	cfg.Auth.Insecure = true
	b, err := cfg.Bind()
	if err != nil || b.GossipHost != "" || b.GossipPort != 7946 {
		t.Fatalf("Bind with Insecure: %+v, %v", b, err)
	}
	lo := Config{Name: "a", HTTP: HTTP{Addr: "127.0.0.1:8080"}}
	lo.SetDefaults()
	if _, _, err := lo.Advertised("10.0.0.1", "7947"); !errors.As(err, &ie) || ie.Field != "AdvertiseAddr" {
		t.Fatalf("Advertised beyond loopback without a secret: %v", err)
	}
	h, p, err := lo.Advertised("127.0.0.1", "7947")
	if err != nil || h != "127.0.0.1:8080" || p != "127.0.0.1:7947" {
		t.Fatalf("Advertised on loopback: %q %q %v", h, p, err)
	}
}

func TestMemorySplit(t *testing.T) {
	if s, tb := (Config{}).MemorySplit(); s != 224<<20 || tb != 32<<20 {
		t.Fatalf("default split %d, %d", s, tb)
	}
}
