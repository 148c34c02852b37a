package deploy

import (
	"context"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"

	"github.com/peercache/peercache/node"
)

// composeFile is the compose file users run (`docker compose up --scale
// cachenode=N`), at the module root.
const composeFile = "docker-compose.yml"

// Names in docker-compose.yml.
const (
	composeNode   = "cachenode" // the service users --scale
	composeKeygen = "keygen"    // the one-shot service that writes the secret
	composeScale  = 5           // the largest --scale the README and make e2e use
)

// warnings collects what compose-go logs at warning level or above while a
// project loads: Compose v2 prints these to its users (obsolete `version`,
// unset variables, YAML 1.1 booleans, deprecated attributes, ...).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

// Levels implements logrus.Hook.
func (w *warnings) Levels() []logrus.Level {
	return []logrus.Level{logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel, logrus.WarnLevel}
}

// Fire implements logrus.Hook.
func (w *warnings) Fire(e *logrus.Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, e.Level.String()+": "+e.Message)
	return nil
}

// loadCompose loads the compose file as Compose v2 does (compose-go's
// cli.ProjectOptions with the same working directory and project name
// handling), but with env as the whole environment instead of the
// process's and without a .env file, so that the result does not depend on
// the machine. It returns the project and the warnings compose-go logged.
func loadCompose(t *testing.T, file string, env map[string]string) (*types.Project, []string) {
	t.Helper()
	// compose-go logs through logrus's standard logger; listen to it for
	// this load only (these tests do not run in parallel).
	w := &warnings{}
	std := logrus.StandardLogger()
	old := std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(w)
	defer std.ReplaceHooks(old)

	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	root, err := filepath.Abs(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{file},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(list),
		cli.WithName("peercache"),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("Compose v2's loader refuses %s: %v", file, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return p, slices.Clone(w.msgs)
}

// composeEnv returns a service's environment, literal values only.
func composeEnv(s types.ServiceConfig) nodeEnv {
	env := nodeEnv{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// portRange parses a published port: a single port, or a range a-b.
func portRange(published string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(published, "-")
	if lo, err = strconv.Atoi(a); err != nil {
		return 0, 0, err
	}
	hi = lo
	if isRange {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, err
		}
	}
	return lo, hi, nil
}

// TestComposeV2 loads docker-compose.yml with Compose v2's loader and
// checks that it loads without a warning and that the node service
// survives `--scale` and `stop`.
func TestComposeV2(t *testing.T) {
	checkCompose(t, filepath.Join(moduleRoot, composeFile))
}

// checkCompose runs TestComposeV2's checks on a compose file.
func checkCompose(t *testing.T, file string) {
	for _, tc := range []struct {
		name      string
		env       map[string]string
		ports     string // the published range the file must yield
		replicas  string
		scaleUpTo int
	}{
		{"defaults", map[string]string{}, "8080-8099", "2", composeScale},
		{"PEERCACHE_* set", map[string]string{"PEERCACHE_PORTS": "20000-20019", "PEERCACHE_REPLICAS": "3", "PEERCACHE_LOG_LEVEL": "debug"},
			"20000-20019", "3", composeScale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, warns := loadCompose(t, file, tc.env)
			for _, w := range warns {
				t.Errorf("Compose v2 warns: %s", w)
			}
			svc, ok := p.Services[composeNode]
			if !ok {
				t.Fatalf("no service %q (services: %v)", composeNode, p.ServiceNames())
			}
			env := composeEnv(svc)
			checkKnownFlags(t, env)
			if env["CACHENODE_REPLICAS"] != tc.replicas {
				t.Errorf("CACHENODE_REPLICAS %q: want %s", env["CACHENODE_REPLICAS"], tc.replicas)
			}

			t.Run("scale", func(t *testing.T) {
				// Compose v2 refuses to scale a service with a container
				// name (pkg/compose/convergence.go getScale).
				if svc.ContainerName != "" {
					t.Errorf("container_name %q: Compose cannot --scale a service with a fixed container name", svc.ContainerName)
				}
				if svc.Hostname != "" {
					t.Errorf("hostname %q: every replica would have the same node name", svc.Hostname)
				}
				if n, ok := env["CACHENODE_NAME"]; ok {
					t.Errorf("CACHENODE_NAME %q: every replica would have the same node name", n)
				}
				svc.SetScale(tc.scaleUpTo)
				if svc.GetScale() != tc.scaleUpTo {
					t.Errorf("--scale %s=%d: scale %d", composeNode, tc.scaleUpTo, svc.GetScale())
				}
				// A fixed host port can be published by one replica only.
				// A range gives each replica its own port of it: Docker
				// picks a free one per container, and Compose v2 starts the
				// containers one at a time so that two never get the same
				// (docker/compose 2.36.2+, "run ContainerStart
				// sequentially"; its e2e fixture port-range is this case).
				if len(svc.Ports) == 0 {
					t.Errorf("no published port: users reach the nodes through one")
				}
				for _, port := range svc.Ports {
					if port.Published == "" {
						continue // an ephemeral host port per replica
					}
					lo, hi, err := portRange(port.Published)
					if err != nil {
						t.Errorf("port %+v: published %q: %v", port, port.Published, err)
						continue
					}
					if hi-lo+1 < tc.scaleUpTo {
						t.Errorf("port %d published as %q: %d host ports for --scale %s=%d", port.Target, port.Published, hi-lo+1, composeNode, tc.scaleUpTo)
					}
					if port.Published != tc.ports {
						t.Errorf("port %d published as %q: want %s", port.Target, port.Published, tc.ports)
					}
					if ip := net.ParseIP(port.HostIP); ip == nil || !ip.IsLoopback() {
						t.Errorf("port %d published on %q: want 127.0.0.1 (host traffic stays on loopback)", port.Target, port.HostIP)
					}
				}
			})

			t.Run("stop", func(t *testing.T) {
				drain := env.duration(t, "CACHENODE_DRAIN_TIMEOUT", node.DefaultDrainTimeout)
				if svc.StopGracePeriod == nil {
					t.Fatalf("no stop_grace_period: Compose's 10s default cuts the %v drain short", drain)
				}
				if g := time.Duration(*svc.StopGracePeriod); g < shutdownBound(drain) {
					t.Errorf("stop_grace_period %v: below --drain-timeout %v + the node's shutdown (%v in all)", g, drain, shutdownBound(drain))
				}
				if s := svc.StopSignal; s != "" && s != "SIGTERM" && s != "TERM" {
					t.Errorf("stop_signal %s: the node drains on SIGTERM", s)
				}
			})

			t.Run("seed and secret", func(t *testing.T) {
				// The seed is the service's own name: Docker's DNS resolves
				// it to every replica.
				host, port, err := net.SplitHostPort(env["CACHENODE_SEEDS"])
				if err != nil || host != composeNode {
					t.Errorf("CACHENODE_SEEDS %q: want %s:PORT (err %v)", env["CACHENODE_SEEDS"], composeNode, err)
				}
				if gp := env.port(t, "CACHENODE_GOSSIP_ADDR", node.DefaultGossipAddr); port != strconv.Itoa(gp) {
					t.Errorf("CACHENODE_SEEDS %q: the node gossips on %d", env["CACHENODE_SEEDS"], gp)
				}
				file := env["CACHENODE_CLUSTER_SECRET_FILE"]
				if file == "" {
					t.Fatal("CACHENODE_CLUSTER_SECRET_FILE unset: a node without a secret refuses to gossip beyond loopback")
				}
				kg, ok := p.Services[composeKeygen]
				if !ok {
					t.Fatalf("no %s service to write %s", composeKeygen, file)
				}
				if d, ok := svc.DependsOn[composeKeygen]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
					t.Errorf("%s depends_on %s: %+v; want condition %s", composeNode, composeKeygen, d, types.ServiceConditionCompletedSuccessfully)
				}
				if i := slices.Index(kg.Command, "--out"); i < 0 || i+1 >= len(kg.Command) || kg.Command[i+1] != file {
					t.Errorf("%s command %q: want it to write --out %s", composeKeygen, kg.Command, file)
				}
				dir := path.Dir(file)
				vol := func(s types.ServiceConfig) (types.ServiceVolumeConfig, bool) {
					for _, v := range s.Volumes {
						if path.Clean(v.Target) == dir {
							return v, true
						}
					}
					return types.ServiceVolumeConfig{}, false
				}
				nv, ok1 := vol(svc)
				kv, ok2 := vol(kg)
				if !ok1 || !ok2 || nv.Type != types.VolumeTypeVolume || nv.Source != kv.Source {
					t.Errorf("%s: want one named volume on %s in both %s (%+v) and %s (%+v)", file, dir, composeNode, nv, composeKeygen, kv)
				}
				if !nv.ReadOnly {
					t.Errorf("%s mounts the secret volume writable", composeNode)
				}
			})
		})
	}
}
