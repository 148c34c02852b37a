package peer

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Auth says how peer connections prove that both ends belong to the
// cluster. The zero value is no authentication at all, for clusters on one
// host (loopback) or a network the operator trusts (--insecure).
type Auth struct {
	// Secret is the cluster secret. When set (and Certificate is not), every
	// connection is TLS 1.3 in both directions with an identity derived from
	// the secret: only a holder of the secret can complete the handshake on
	// either side, and the traffic is encrypted and integrity-protected.
	Secret []byte
	// Certificate and CAs, when both set, replace the derived identity
	// (mTLS with the operator's own PKI): each end presents Certificate and
	// must present a certificate that CAs verify. Host names are not
	// checked (members are addressed by IP); any certificate of the CA is a
	// member.
	Certificate *tls.Certificate
	CAs         *x509.CertPool
}

// Enabled reports whether connections are authenticated.
func (a Auth) Enabled() bool { return len(a.Secret) > 0 || (a.Certificate != nil && a.CAs != nil) }

// Mode names the authentication for logs and status: "off", "secret"
// (TLS keyed by the cluster secret) or "mtls".
func (a Auth) Mode() string {
	switch {
	case a.Certificate != nil && a.CAs != nil:
		return "mtls"
	case len(a.Secret) > 0:
		return "secret"
	default:
		return "off"
	}
}

// MinSecretBytes is the shortest cluster secret accepted.
const MinSecretBytes = 16

// ParseSecret reads a cluster secret file's content: base64 (as `cachenode
// keygen` writes it) of at least MinSecretBytes bytes, or at least that
// many raw bytes. Surrounding white space is ignored.
func ParseSecret(b []byte) ([]byte, error) {
	t := strings.TrimSpace(string(b))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(t); err == nil && len(k) >= MinSecretBytes {
			return k, nil
		}
	}
	if len(t) >= MinSecretBytes {
		return []byte(t), nil
	}
	return nil, fmt.Errorf("cluster secret: %d bytes; want at least %d (make one with `cachenode keygen`)", len(t), MinSecretBytes)
}

// GenerateSecret returns a new random secret (32 bytes) in the form
// ParseSecret reads.
func GenerateSecret() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("cluster secret: %w", err)
	}
	return base64.StdEncoding.EncodeToString(b[:]), nil
}

// DeriveKey derives an n-byte key for one purpose from the cluster secret
// (HKDF-SHA256), so that the gossip key, the peer identity and anything
// later are independent of each other.
func DeriveKey(secret []byte, purpose string, n int) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, []byte("peercache"), purpose, n)
}

// peerServerName is the name in the derived certificate.
const peerServerName = "peercache-peer"

// tlsConfigs returns the server and client TLS configurations for a, or
// nils when a is not Enabled.
func (a Auth) tlsConfigs() (server, client *tls.Config, err error) {
	switch a.Mode() {
	case "off":
		return nil, nil, nil
	case "mtls":
		cert, cas := *a.Certificate, a.CAs
		verify := func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("peer presented no certificate")
			}
			opts := x509.VerifyOptions{Roots: cas, Intermediates: x509.NewCertPool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
		server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAnyClientCert, VerifyConnection: verify}
		client = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			InsecureSkipVerify: true, VerifyConnection: verify} // the chain is verified in verify; names are not
		return server, client, nil
	}
	cert, pool, err := derivedIdentity(a.Secret)
	if err != nil {
		return nil, nil, err
	}
	server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	client = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		RootCAs: pool, ServerName: peerServerName}
	return server, client, nil
}

// derivedIdentity makes the certificate every holder of secret shares: an
// Ed25519 key derived from the secret and a self-signed certificate for it,
// which is also the only trusted root.
func derivedIdentity(secret []byte) (tls.Certificate, *x509.CertPool, error) {
	seed, err := DeriveKey(secret, "peer tls identity", ed25519.SeedSize)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	key := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: peerServerName, Organization: []string{"peercache cluster"}},
		DNSNames:              []string{peerServerName},
		NotBefore:             time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("peer identity: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("peer identity: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
