package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/peercache/peercache/auth"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/peer"
)

// keygen writes a new cluster secret: to stdout, or to --out (mode 0600,
// created atomically; with --if-missing an existing file is kept, which
// lets a compose one-shot service run it on every `up`). --password-out
// also writes a new client password (for --password-file) the same way.
func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cachenode keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write the secret to (default: standard output)")
	pwOut := fs.String("password-out", "", "also write a new client password to this file (for --password-file)")
	ifMissing := fs.Bool("if-missing", false, "with --out and --password-out: keep a file that exists already")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "cachenode keygen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	secret, err := peer.GenerateSecret()
	if err != nil {
		fmt.Fprintf(stderr, "cachenode keygen: %v\n", err)
		return 1
	}
	if *out == "" {
		fmt.Fprintln(stdout, secret)
	} else if code := writeSecretFile(*out, secret, "cluster secret", *ifMissing, stderr); code != 0 {
		return code
	}
	if *pwOut != "" {
		pw, err := auth.GeneratePassword()
		if err != nil {
			fmt.Fprintf(stderr, "cachenode keygen: %v\n", err)
			return 1
		}
		return writeSecretFile(*pwOut, pw, "client password", *ifMissing, stderr)
	}
	return 0
}

// writeSecretFile writes content and a newline to path, mode 0600,
// atomically (a temporary file renamed); with ifMissing it keeps a file
// that exists.
func writeSecretFile(path, content, what string, ifMissing bool, stderr io.Writer) int {
	if ifMissing {
		if _, err := os.Stat(path); err == nil {
			fmt.Fprintf(stderr, "cachenode keygen: %s exists; kept\n", path)
			return 0
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err == nil {
		_, err = fmt.Fprintln(tmp, content)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), 0o600)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "cachenode keygen: writing %s: %v\n", path, err)
		return 1
	}
	fmt.Fprintf(stderr, "cachenode keygen: wrote a new %s to %s\n", what, path)
	return 0
}

// security applies --cluster-secret-file, --peer-tls-* and --max-clock-skew.
func (o *options) security(cfg *node.Config) error {
	if o.secretFile != "" {
		b, err := os.ReadFile(o.secretFile)
		if err != nil {
			return fmt.Errorf("--cluster-secret-file: %w", err)
		}
		s, err := peer.ParseSecret(b)
		if err != nil {
			return fmt.Errorf("--cluster-secret-file %s: %w", o.secretFile, err)
		}
		cfg.Auth.Secret = s
	}
	files := 0
	for _, f := range []string{o.peerCertFile, o.peerKeyFile, o.peerCAFile} {
		if f != "" {
			files++
		}
	}
	switch files {
	case 0:
	case 3:
		cert, err := tls.LoadX509KeyPair(o.peerCertFile, o.peerKeyFile)
		if err != nil {
			return fmt.Errorf("--peer-tls-cert-file/--peer-tls-key-file: %w", err)
		}
		pem, err := os.ReadFile(o.peerCAFile)
		if err != nil {
			return fmt.Errorf("--peer-tls-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--peer-tls-ca-file %s: no PEM certificate in it", o.peerCAFile)
		}
		cfg.Auth.Certificate, cfg.Auth.CAs = &cert, pool
	default:
		return errors.New("--peer-tls-cert-file, --peer-tls-key-file and --peer-tls-ca-file go together")
	}
	d, err := time.ParseDuration(o.maxClockSkew)
	if err != nil || d <= 0 {
		return fmt.Errorf("--max-clock-skew %q: want a positive duration such as 1m", o.maxClockSkew)
	}
	cfg.Peer.MaxClockSkew = d
	return nil
}

// configFlag names the flag behind a node.Config address field.
func configFlag(field string) string {
	switch field {
	case "GossipAddr":
		return "--gossip-addr"
	case "PeerAddr":
		return "--peer-addr"
	case "AdvertiseAddr":
		return "--advertise-addr"
	case "AdvertisePeer":
		return "--peer-advertise-addr"
	default:
		return field
	}
}
