//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Timeouts of docker commands. Every docker and compose command runs under
// one of these (exec.CommandContext), so no step can hang the suite.
const (
	quickCmd   = 30 * time.Second // inspect, ps, network, exec
	composeCmd = 3 * time.Minute  // up/scale (a scale-down waits for drains)
	downCmd    = 2 * time.Minute
	buildCmd   = 10 * time.Minute
)

// run executes a command with a timeout and returns its stdout; the error
// carries the command line and stderr.
func run(ctx context.Context, timeout time.Duration, env []string, stdin []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timeout %s)", ctx.Err(), timeout)
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// runCombined is run with stderr folded into the output (docker logs,
// cachenode --help print to stderr).
func runCombined(ctx context.Context, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out.String(), nil
}

func docker(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	return run(ctx, timeout, nil, nil, "docker", args...)
}

// composeTool is how Compose is invoked here: "docker compose" (v2) when the
// plugin is installed, else the standalone "docker-compose" (v1).
type composeTool struct {
	argv []string
	v1   bool
}

func findCompose(ctx context.Context) (composeTool, error) {
	if _, err := run(ctx, quickCmd, nil, nil, "docker", "compose", "version"); err == nil {
		return composeTool{argv: []string{"docker", "compose"}}, nil
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		if _, err := run(ctx, quickCmd, nil, nil, "docker-compose", "version"); err == nil {
			return composeTool{argv: []string{"docker-compose"}, v1: true}, nil
		}
	}
	return composeTool{}, errors.New(`neither "docker compose" (v2) nor "docker-compose" (v1) works`)
}

func (c composeTool) String() string { return strings.Join(c.argv, " ") }

// project is one compose project of the suite.
type project struct {
	name    string
	tool    composeTool
	files   []string
	env     []string // PEERCACHE_PORTS and the like
	service string
}

// compose runs a compose subcommand for the project.
func (p *project) compose(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	argv := slices.Clone(p.tool.argv[1:])
	argv = append(argv, "-p", p.name)
	for _, f := range p.files {
		argv = append(argv, "-f", f)
	}
	argv = append(argv, args...)
	return run(ctx, timeout, p.env, nil, p.tool.argv[0], argv...)
}

// scale sets the number of replicas without recreating existing ones and
// without building or pulling (the image was built offline).
func (p *project) scale(ctx context.Context, n int) error {
	_, err := p.compose(ctx, composeCmd, "up", "-d", "--no-build", "--no-recreate", "--scale", fmt.Sprintf("%s=%d", p.service, n))
	return err
}

func (p *project) down(ctx context.Context) error {
	_, err := p.compose(ctx, downCmd, "down", "-v", "--remove-orphans", "--timeout", "5")
	return err
}

// container is what the suite needs to know of one replica.
type container struct {
	ID         string
	Name       string
	Hostname   string // the node name (CACHENODE_NAME defaults to it)
	Number     int    // compose's container number
	Running    bool
	Status     string
	Health     string
	ExitCode   int
	StartedAt  time.Time
	FinishedAt time.Time
	Network    string
	IP         string
	HostPort   string // published port of 8080 on 127.0.0.1, "" when none
}

// Base is the node's HTTP base URL from the host.
func (c container) Base() string { return "http://127.0.0.1:" + c.HostPort }

type inspectDoc struct {
	ID    string `json:"Id"`
	Name  string
	State struct {
		Status     string
		Running    bool
		ExitCode   int
		StartedAt  time.Time
		FinishedAt time.Time
		Health     *struct{ Status string }
	}
	Config struct {
		Hostname string
		Labels   map[string]string
	}
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
		Ports    map[string][]struct{ HostIp, HostPort string }
	}
}

// containers lists the project's service containers (running or not),
// sorted by container number.
func (p *project) containers(ctx context.Context) ([]container, error) {
	out, err := docker(ctx, quickCmd, "ps", "-a", "-q", "--no-trunc",
		"--filter", "label=com.docker.compose.project="+p.name,
		"--filter", "label=com.docker.compose.service="+p.service)
	if err != nil {
		return nil, err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil, nil
	}
	return inspect(ctx, ids...)
}

func inspect(ctx context.Context, ids ...string) ([]container, error) {
	out, err := docker(ctx, quickCmd, append([]string{"inspect"}, ids...)...)
	if err != nil {
		return nil, err
	}
	var docs []inspectDoc
	if err := json.Unmarshal([]byte(out), &docs); err != nil {
		return nil, fmt.Errorf("docker inspect: %w", err)
	}
	var cs []container
	for _, d := range docs {
		c := container{
			ID: d.ID, Name: strings.TrimPrefix(d.Name, "/"), Hostname: d.Config.Hostname,
			Running: d.State.Running, Status: d.State.Status, ExitCode: d.State.ExitCode,
			StartedAt: d.State.StartedAt, FinishedAt: d.State.FinishedAt,
		}
		if d.State.Health != nil {
			c.Health = d.State.Health.Status
		}
		c.Number, _ = strconv.Atoi(d.Config.Labels["com.docker.compose.container-number"])
		for name, n := range d.NetworkSettings.Networks {
			c.Network, c.IP = name, n.IPAddress
		}
		for _, b := range d.NetworkSettings.Ports["8080/tcp"] {
			if b.HostIp == "127.0.0.1" {
				c.HostPort = b.HostPort
			}
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Number < cs[j].Number })
	return cs, nil
}

// running returns the running containers that have a published port.
func running(cs []container) []container {
	var out []container
	for _, c := range cs {
		if c.Running && c.HostPort != "" {
			out = append(out, c)
		}
	}
	return out
}

// freePortRange finds n consecutive ports on 127.0.0.1 that can be bound
// now, for the compose file's published range (Docker picks one per replica
// from it and fails, rather than trying the next, when the one it picks is
// taken by another program).
func freePortRange(n int) (string, error) {
	for attempt := 0; attempt < 50; attempt++ {
		base := 20000 + int(time.Now().UnixNano()/1000%30000)
		base -= base % 20
		ok := true
		for p := base; p < base+n; p++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return fmt.Sprintf("%d-%d", base, base+n-1), nil
		}
		time.Sleep(time.Millisecond)
	}
	return "", fmt.Errorf("no %d consecutive free ports found on 127.0.0.1", n)
}

// freeSubnet picks a /24 for the project network that no Docker network and
// no host interface uses. The suite reconnects a partitioned container with
// its old IP (docker network connect --ip), which Docker allows only on a
// network with a configured subnet.
func freeSubnet(ctx context.Context) (string, error) {
	var used []netip.Prefix
	if out, err := docker(ctx, quickCmd, "network", "ls", "-q"); err == nil && strings.TrimSpace(out) != "" {
		args := append([]string{"network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}"}, strings.Fields(out)...)
		if sub, err := docker(ctx, quickCmd, args...); err == nil {
			for _, s := range strings.Fields(sub) {
				if p, err := netip.ParsePrefix(s); err == nil {
					used = append(used, p)
				}
			}
		}
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				used = append(used, p)
			}
		}
	}
	for third := 200; third < 255; third++ {
		cand := netip.MustParsePrefix(fmt.Sprintf("172.31.%d.0/24", third))
		clash := false
		for _, u := range used {
			if u.Overlaps(cand) {
				clash = true
				break
			}
		}
		if !clash {
			return cand.String(), nil
		}
	}
	return "", errors.New("no free /24 in 172.31.200.0-172.31.254.0 for the project network")
}

// writeOverride writes the suite's compose override: a label that marks
// the suite's containers and a fixed subnet for the project network (see
// freeSubnet). Everything else is the repository's docker-compose.yml as
// users run it (the replication factor too: PEERCACHE_REPLICAS, default 2).
func writeOverride(dir, subnet string) (string, error) {
	var b strings.Builder
	b.WriteString("# generated by the e2e suite\nservices:\n  cachenode:\n")
	b.WriteString("    labels:\n      peercache.e2e: \"1\"\n")
	fmt.Fprintf(&b, "networks:\n  default:\n    ipam:\n      config:\n        - subnet: %s\n", subnet)
	path := filepath.Join(dir, "e2e-override.yml")
	return path, os.WriteFile(path, []byte(b.String()), 0o644)
}

// dockerEvent is one line of docker events --format '{{json .}}'.
type dockerEvent struct {
	Action   string `json:"Action"`
	TimeNano int64  `json:"timeNano"`
	Actor    struct {
		ID         string            `json:"ID"`
		Attributes map[string]string `json:"Attributes"`
	} `json:"Actor"`
}

// events returns the project's container events between since and until.
func (p *project) events(ctx context.Context, since, until time.Time) ([]dockerEvent, error) {
	out, err := docker(ctx, quickCmd, "events",
		"--since", strconv.FormatInt(since.Unix()-1, 10),
		"--until", strconv.FormatInt(until.Unix()+1, 10),
		"--filter", "type=container",
		"--filter", "label=com.docker.compose.project="+p.name,
		"--format", "{{json .}}")
	if err != nil {
		return nil, err
	}
	var evs []dockerEvent
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e dockerEvent
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, fmt.Errorf("docker events: %w: %q", err, line)
		}
		evs = append(evs, e)
	}
	return evs, nil
}

// removeStaleProjects tears down projects left by an earlier run of the
// suite that was killed before its cleanup (a go test timeout panics
// without running cleanups).
func removeStaleProjects(ctx context.Context, prefix string, logf func(string, ...any)) {
	out, err := docker(ctx, quickCmd, "ps", "-a", "--filter", "label=peercache.e2e", "--format", `{{.Label "com.docker.compose.project"}}`)
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, name := range strings.Fields(out) {
		if !strings.HasPrefix(name, prefix) || seen[name] {
			continue
		}
		seen[name] = true
		logf("removing the stale e2e project %s", name)
		ids, _ := docker(ctx, quickCmd, "ps", "-a", "-q", "--filter", "label=com.docker.compose.project="+name)
		if f := strings.Fields(ids); len(f) > 0 {
			docker(ctx, downCmd, append([]string{"rm", "-f", "-v"}, f...)...)
		}
		nets, _ := docker(ctx, quickCmd, "network", "ls", "-q", "--filter", "label=com.docker.compose.project="+name)
		if f := strings.Fields(nets); len(f) > 0 {
			docker(ctx, quickCmd, append([]string{"network", "rm"}, f...)...)
		}
	}
}
