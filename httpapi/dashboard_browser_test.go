package httpapi_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/peercache/peercache/internal/nodetest"
)

// findChromium returns the path of a Chromium (or Chrome) binary, "" if none.
func findChromium() string {
	if p := os.Getenv("PEERCACHE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// needChromium returns Chromium's path; without one it fails the test
// under CI and skips it (loudly) elsewhere.
func needChromium(t *testing.T) string {
	t.Helper()
	exe := findChromium()
	if exe == "" {
		msg := "chromium not found: the dashboard browser test needs it (scripts/deps.sh installs it: apt-get install chromium)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("\n\n!!!!!!!! SKIPPED: " + msg + " !!!!!!!!\n")
	}
	return exe
}

// artifactDir is where tests leave files for people to look at:
// $PEERCACHE_ARTIFACTS, else <tmp>/peercache-artifacts.
func artifactDir(t testing.TB) string {
	dir := os.Getenv("PEERCACHE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "peercache-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	return dir
}

// Acceptance (operator experience): Debian's chromium, driven by chromedp,
// loads the dashboard of a 3-node cluster, finds 3 members and a ring
// coloured by 3 owners in the DOM, and saves a screenshot.
func TestDashboardBrowser(t *testing.T) {
	exe := needChromium(t)
	nodes := startCluster(t, 3)
	for i := 0; i < 300; i++ {
		if r := nodes[i%3].put(t, fmt.Sprintf("dash-%d", i), fmt.Sprintf("value %d %0*d", i, i%200, 0)); r.Status != 204 {
			t.Fatalf("put: %s", r)
		}
	}
	// Light, bounded read traffic while the page is open, so that request
	// rates are not all zero.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			nodetest.TryGet(nodes[i%3].keyURL(fmt.Sprintf("dash-%d", i%300))) // load for the rates; errors do not matter
		}
	})
	defer func() { close(stop); wg.Wait() }()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root in containers
		chromedp.WindowSize(1440, 1000),
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()

	// Rendered: 3 member rows, ring arcs of 3 distinct owners, 3 key bars,
	// and at least two refreshes (the sparkline needs two samples).
	const rendered = `(() => {
		const rows = document.querySelectorAll('#members tbody tr').length;
		const owners = new Set([...document.querySelectorAll('#ring path.seg')].map(p => p.dataset.owner));
		const bars = document.querySelectorAll('#bars-keys .bar-row').length;
		const spark = document.querySelector('#spark polyline') !== null;
		return rows === 3 && owners.size === 3 && bars === 3 && spark;
	})()`
	if err := chromedp.Do(ctx,
		chromedp.Navigate(nodes[0].base+"/"),
		chromedp.Poll[chromedp.Void](rendered, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)),
	); err != nil {
		t.Fatalf("dashboard did not render 3 members and a 3-colour ring: %v", err)
	}
	members, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#members tbody tr')].map(r => r.dataset.node)`))
	if err != nil {
		t.Fatal(err)
	}
	badge, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('mode-badge').textContent`))
	if err != nil {
		t.Fatal(err)
	}
	evicted, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#members tbody td.evicted')].map(td => td.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(evicted) != "[0 0 0]" {
		t.Errorf("evicted cells %v, want [0 0 0] (the status's evictions.store of each node)", evicted)
	}
	if err := chromedp.Do(ctx, chromedp.Sleep(700*time.Millisecond)); err != nil { // bar transitions
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if fmt.Sprint(members) != "[n0 n1 n2]" {
		t.Errorf("member rows %v, want [n0 n1 n2]", members)
	}
	if badge != "read-write" {
		t.Errorf("mode badge %q, want read-write", badge)
	}
	path := filepath.Join(artifactDir(t), "dashboard.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshot: %s (%d bytes)", path, len(png))
	if os.Getenv("PEERCACHE_UPDATE_DOCS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", "dashboard.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("updated docs/dashboard.png")
	}
}

// With client authentication on, the dashboard works for a browser that
// holds a read user's credentials (what the browser's HTTP Basic login
// prompt gives it: every request of the page carries them), and shows no
// data to one that does not.
func TestDashboardBrowserWithAuth(t *testing.T) {
	exe := needChromium(t)
	users := testUsers(t)
	n := startNode(t, "auth0", nil, func(c *nodetest.Config) { c.HTTP.Auth = users })
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()

	run := func(hdr network.Headers) (string, error) {
		ctx, cancelCtx := chromedp.NewContext(actx)
		defer cancelCtx()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var acts []chromedp.Action[chromedp.Void]
		if hdr != nil {
			acts = append(acts, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
				_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: hdr})
				return err
			}))
		}
		acts = append(acts, chromedp.Navigate(n.base+"/"))
		if hdr != nil {
			acts = append(acts, chromedp.Poll[chromedp.Void](`document.querySelectorAll('#members tbody tr').length === 1`,
				chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second)))
		}
		if err := chromedp.Do(ctx, acts...); err != nil {
			return "", err
		}
		return chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	}
	if _, err := run(network.Headers{"Authorization": basic("ro")}); err != nil {
		t.Fatalf("dashboard with a read user's credentials did not render its member: %v", err)
	}
	// Without credentials the browser is asked for them (401 with
	// WWW-Authenticate: Basic); headless, it cannot prompt and fails the
	// navigation instead. Nothing of the node is shown either way.
	text, err := run(nil)
	switch {
	case err != nil && strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS"):
	case err != nil:
		t.Fatal(err)
	case !strings.Contains(text, "authentication required") || strings.Contains(text, "auth0"):
		t.Fatalf("dashboard without credentials shows: %.300q", text)
	}
}
