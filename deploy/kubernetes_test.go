package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/peercache/peercache/httpapi"
	"github.com/peercache/peercache/node"
	"github.com/peercache/peercache/store"
)

// kustomizeDir is the kustomize base users apply.
const kustomizeDir = "kubernetes"

// Facts of the image (Dockerfile) the pods run.
const (
	imageUID       = 10001
	imageTmpDir    = "/tmp" // TMPDIR: the supervised Redis's working directory
	redisPort      = 6379   // the supervised redis-server's default --redis-port
	containerName  = "cachenode"
	docsKubernetes = "docs/kubernetes.md"
)

// runtimeHeadroom is what cachenode needs beside its tiers: Go runtime,
// connection buffers, import batches (up to 32 MiB each) and the metrics.
const runtimeHeadroom = 128 << 20

// rendered is the kustomize base decoded into API types.
type rendered struct {
	sts      *appsv1.StatefulSet
	services map[string]*corev1.Service
	pdb      *policyv1.PodDisruptionBudget
}

// kubectl returns kubectl's path. Without kubectl the test fails under CI
// (CI=true; scripts/deps.sh installs it) and skips elsewhere.
func kubectl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err == nil {
		return p
	}
	msg := "kubectl not found: the Kubernetes manifests are NOT checked (scripts/deps.sh installs kubectl; `make deps`)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	fmt.Fprintln(os.Stderr, "deploy: SKIP:", msg)
	t.Skip(msg)
	return ""
}

// kustomize renders the base with `kubectl kustomize`.
func kustomize(t *testing.T) []byte {
	t.Helper()
	bin := kubectl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "kustomize", kustomizeDir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", kustomizeDir, err, stderr.String())
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Errorf("kubectl kustomize %s warned:\n%s", kustomizeDir, s)
	}
	return stdout.Bytes()
}

// decode splits the rendered YAML stream and decodes each object strictly
// (unknown or duplicate fields fail) into its k8s.io/api type. Kinds other
// than the expected ones fail: a Secret in particular must never be part
// of the base.
func decode(t *testing.T, out []byte) rendered {
	t.Helper()
	r := rendered{services: map[string]*corev1.Service{}}
	rd := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for i := 0; ; i++ {
		doc, err := rd.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading rendered document %d: %v", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 StatefulSet":
			if r.sts != nil {
				t.Fatal("more than one StatefulSet")
			}
			r.sts = &appsv1.StatefulSet{}
			obj = r.sts
		case "v1 Service":
			obj = &corev1.Service{}
		case "policy/v1 PodDisruptionBudget":
			if r.pdb != nil {
				t.Fatal("more than one PodDisruptionBudget")
			}
			r.pdb = &policyv1.PodDisruptionBudget{}
			obj = r.pdb
		default:
			t.Fatalf("document %d: unexpected %s %s (the base holds a StatefulSet, Services and a PodDisruptionBudget; the Secret is created by the user)", i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			t.Fatalf("document %d (%s): strict decoding: %v", i, tm.Kind, err)
		}
		if s, ok := obj.(*corev1.Service); ok {
			if r.services[s.Name] != nil {
				t.Fatalf("two Services named %s", s.Name)
			}
			r.services[s.Name] = s
		}
	}
	return r
}

// TestKubernetesBase renders deploy/kubernetes and checks the invariants
// a cluster would otherwise only show at run time.
func TestKubernetesBase(t *testing.T) {
	out := kustomize(t)
	r := decode(t, out)
	if r.sts == nil || r.pdb == nil || len(r.services) != 2 {
		t.Fatalf("rendered: StatefulSet %v, PodDisruptionBudget %v, %d Services; want one, one and two (headless seed, client)",
			r.sts != nil, r.pdb != nil, len(r.services))
	}
	sts := r.sts
	spec := &sts.Spec.Template.Spec
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == containerName {
			c = &spec.Containers[i]
		}
	}
	if c == nil || len(spec.Containers) != 1 {
		t.Fatalf("pod template: want exactly one container %q", containerName)
	}
	env := containerEnv(t, c)
	headless := r.services[sts.Spec.ServiceName]
	if headless == nil {
		t.Fatalf("StatefulSet serviceName %q: no such Service", sts.Spec.ServiceName)
	}
	podLabels := labels.Set(sts.Spec.Template.Labels)

	t.Run("flags", func(t *testing.T) { checkKnownFlags(t, env) })

	t.Run("selectors", func(t *testing.T) {
		sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(podLabels) {
			t.Errorf("StatefulSet selector %v does not select its pod labels %v (err %v)", sts.Spec.Selector, podLabels, err)
		}
		for name, s := range r.services {
			if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels) {
				t.Errorf("Service %s selector %v does not select the pods %v", name, s.Spec.Selector, podLabels)
			}
		}
		pdbSel, err := metav1.LabelSelectorAsSelector(r.pdb.Spec.Selector)
		if err != nil || pdbSel.Empty() || !pdbSel.Matches(podLabels) {
			t.Errorf("PodDisruptionBudget selector %v does not select the pods (err %v)", r.pdb.Spec.Selector, err)
		}
	})

	t.Run("stable names", func(t *testing.T) {
		if sts.Spec.PodManagementPolicy != "" && sts.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement {
			t.Errorf("podManagementPolicy %s: want OrderedReady (scale-down one node at a time)", sts.Spec.PodManagementPolicy)
		}
		if u := sts.Spec.UpdateStrategy; u.Type != "" && u.Type != appsv1.RollingUpdateStatefulSetStrategyType {
			t.Errorf("updateStrategy %s: want RollingUpdate", u.Type)
		} else if u.RollingUpdate != nil && u.RollingUpdate.MaxUnavailable != nil && u.RollingUpdate.MaxUnavailable.IntValue() != 1 {
			t.Errorf("rolling update maxUnavailable %s: want 1", u.RollingUpdate.MaxUnavailable.String())
		}
		// The node name must be the pod name: the default (the hostname,
		// which is the pod name) or the downward API's metadata.name.
		if v, ok := env["CACHENODE_NAME"]; ok && v != "fieldRef:metadata.name" {
			t.Errorf("CACHENODE_NAME %s: want the pod's name (fieldRef metadata.name) so that a restarted pod rejoins under its own name", v)
		}
		if v := env["CACHENODE_ADVERTISE_ADDR"]; v != "fieldRef:status.podIP" {
			t.Errorf("CACHENODE_ADVERTISE_ADDR %q: want the pod IP (fieldRef status.podIP)", v)
		}
	})

	gossipPort := env.port(t, "CACHENODE_GOSSIP_ADDR", node.DefaultGossipAddr)
	peerPort := gossipPort + 1
	if _, ok := env["CACHENODE_PEER_ADDR"]; ok {
		peerPort = env.port(t, "CACHENODE_PEER_ADDR", "")
	}
	httpPort := env.port(t, "CACHENODE_HTTP_ADDR", httpapi.DefaultAddr)

	t.Run("seed", func(t *testing.T) {
		if headless.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("Service %s (serviceName of the StatefulSet) clusterIP %q: want None (headless)", headless.Name, headless.Spec.ClusterIP)
		}
		if !headless.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: publishNotReadyAddresses must be true: pods become ready only after joining, through this name", headless.Name)
		}
		seeds := strings.Split(env["CACHENODE_SEEDS"], ",")
		if len(seeds) == 0 || seeds[0] == "" {
			t.Fatal("CACHENODE_SEEDS unset: the pods would not find each other")
		}
		for _, s := range seeds {
			host, port, err := net.SplitHostPort(strings.TrimSpace(s))
			if err != nil {
				t.Errorf("seed %q: %v", s, err)
				continue
			}
			// The Service's DNS name: the short name (the pod's own
			// namespace) or a longer form of it.
			if host != headless.Name && !strings.HasPrefix(host, headless.Name+".") {
				t.Errorf("seed %q: want the headless Service's DNS name %s", s, headless.Name)
			}
			if port != strconv.Itoa(gossipPort) {
				t.Errorf("seed %q: port %s, but the node gossips on %d", s, port, gossipPort)
			}
			if ns := strings.Split(host, "."); len(ns) > 1 && sts.Namespace != "" && ns[1] != sts.Namespace {
				t.Errorf("seed %q: namespace %s, the StatefulSet's is %s", s, ns[1], sts.Namespace)
			}
		}
		want := []struct {
			port  int
			proto corev1.Protocol
		}{{gossipPort, corev1.ProtocolTCP}, {gossipPort, corev1.ProtocolUDP}, {peerPort, corev1.ProtocolTCP}}
		for _, w := range want {
			if !servicePort(t, headless, c, w.port, w.proto) {
				t.Errorf("headless Service %s: no %s port %d reaching the container's", headless.Name, w.proto, w.port)
			}
		}
	})

	t.Run("client service", func(t *testing.T) {
		var client *corev1.Service
		for name, s := range r.services {
			if name != headless.Name {
				client = s
			}
		}
		if client == nil {
			t.Fatal("no client Service")
		}
		if client.Spec.ClusterIP == corev1.ClusterIPNone || client.Spec.PublishNotReadyAddresses {
			t.Errorf("client Service %s must load-balance over ready pods only", client.Name)
		}
		if !servicePort(t, client, c, httpPort, corev1.ProtocolTCP) {
			t.Errorf("client Service %s: no port reaching HTTP (%d)", client.Name, httpPort)
		}
		if _, ok := env["CACHENODE_RESP_ADDR"]; ok {
			respPort := env.port(t, "CACHENODE_RESP_ADDR", "")
			if env["CACHENODE_REDIS_SERVER"] != "" && respPort == int(env.bytes(t, "CACHENODE_REDIS_PORT", redisPort)) {
				t.Errorf("RESP port %d is the node's own redis-server's", respPort)
			}
			if !servicePort(t, client, c, respPort, corev1.ProtocolTCP) {
				t.Errorf("client Service %s: no port reaching RESP (%d)", client.Name, respPort)
			}
		}
		for _, p := range client.Spec.Ports {
			if n := targetPort(c, p.TargetPort, p.Protocol); n == gossipPort || n == peerPort {
				t.Errorf("client Service %s exposes member port %d (gossip and peer are for members only)", client.Name, n)
			}
		}
		if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
			for name := range r.services {
				if v := strings.ToUpper(strings.ReplaceAll(name, "-", "_")); strings.HasPrefix(v+"_", "CACHENODE_") {
					t.Errorf("Service %s with service links on sets %s_* in the pods, among cachenode's variables", name, v)
				}
			}
		}
	})

	t.Run("drain", func(t *testing.T) {
		drain := env.duration(t, "CACHENODE_DRAIN_TIMEOUT", node.DefaultDrainTimeout)
		if spec.TerminationGracePeriodSeconds == nil {
			t.Fatal("terminationGracePeriodSeconds unset (30s default) is below --drain-timeout")
		}
		grace := time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		if grace < shutdownBound(drain) {
			t.Errorf("terminationGracePeriodSeconds %v: below --drain-timeout %v + the node's shutdown (%v in all)", grace, drain, shutdownBound(drain))
		}
		if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
			t.Errorf("a preStop hook delays SIGTERM and eats into the grace period")
		}
		if r.pdb.Spec.MaxUnavailable == nil || r.pdb.Spec.MaxUnavailable.IntValue() != 1 || r.pdb.Spec.MinAvailable != nil {
			t.Errorf("PodDisruptionBudget: want maxUnavailable 1 (one pod at a time), got maxUnavailable %v minAvailable %v",
				r.pdb.Spec.MaxUnavailable, r.pdb.Spec.MinAvailable)
		}
	})

	t.Run("probes", func(t *testing.T) {
		type probe struct {
			name string
			p    *corev1.Probe
			path string // "" any path the node serves
		}
		probes := []probe{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/livez"}}
		if c.StartupProbe != nil {
			probes = append(probes, probe{"startup", c.StartupProbe, ""})
		}
		var paths []string
		for _, p := range probes {
			if p.p == nil || p.p.HTTPGet == nil {
				t.Errorf("%s probe: want an HTTP GET", p.name)
				continue
			}
			g := p.p.HTTPGet
			if p.path != "" && g.Path != p.path {
				t.Errorf("%s probe path %q: want %s", p.name, g.Path, p.path)
			}
			if n := targetPort(c, g.Port, corev1.ProtocolTCP); n != httpPort {
				t.Errorf("%s probe port %s is %d; the node serves HTTP on %d", p.name, g.Port.String(), n, httpPort)
			}
			if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
				t.Errorf("%s probe scheme %s: the node serves plain HTTP", p.name, g.Scheme)
			}
			paths = append(paths, g.Path)
		}
		for p, code := range servedStatus(t, paths...) {
			if code == 404 {
				t.Errorf("probe path %s: the node answers 404", p)
			}
		}
		if lp := c.LivenessProbe; lp != nil && c.StartupProbe == nil && lp.InitialDelaySeconds == 0 {
			t.Errorf("liveness probe without a startup probe or initial delay: the node starts its Redis first (up to 15s)")
		}
	})

	t.Run("memory", func(t *testing.T) {
		limit, hasLimit := c.Resources.Limits[corev1.ResourceMemory]
		request, hasRequest := c.Resources.Requests[corev1.ResourceMemory]
		if !hasLimit || !hasRequest {
			t.Fatalf("memory request %v and limit %v: want both", hasRequest, hasLimit)
		}
		if request.Cmp(limit) != 0 {
			t.Errorf("memory request %s != limit %s: the scheduler should reserve what the pod may use", request.String(), limit.String())
		}
		if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("no CPU request")
		}
		embedded := env["CACHENODE_REDIS_SERVER"] == "" && env["CACHENODE_REDIS_ADDR"] == ""
		// The local tier's default is its share of --memory-max-bytes
		// (node.Config.MemorySplit): 1/8 with the embedded store, 1/4 with
		// a Redis shard.
		nodeBudget := env.bytes(t, "CACHENODE_MEMORY_MAX_BYTES", node.DefaultMemoryMaxBytes)
		defaultTier := nodeBudget / 4
		if embedded {
			defaultTier = nodeBudget / 8
		}
		tierBytes := env.bytes(t, "CACHENODE_LOCAL_TIER_BYTES", defaultTier)
		budget := tierBytes + runtimeHeadroom
		if embedded {
			// The embedded store, bounded by --memory-max-bytes (which
			// covers the tier too: counted twice here, to be safe).
			budget += nodeBudget
		} else {
			// The shard is the supervised Redis, in the same container,
			// started without maxmemory: nothing bounds it. Require room for
			// at least the embedded store's default budget.
			t.Logf("the shard is Redis without maxmemory: the limit (%s) leaves it %d MiB; a larger shard is OOM-killed",
				limit.String(), (limit.Value()-tierBytes-runtimeHeadroom)>>20)
			budget += store.DefaultMemoryMaxBytes
		}
		if limit.Cmp(*resource.NewQuantity(budget, resource.BinarySI)) < 0 {
			t.Errorf("memory limit %s below the node's budget %d MiB (local tier %d MiB + runtime %d MiB + shard)",
				limit.String(), budget>>20, tierBytes>>20, runtimeHeadroom>>20)
		}
	})

	t.Run("security", func(t *testing.T) {
		psc, sc := spec.SecurityContext, c.SecurityContext
		if psc == nil || sc == nil {
			t.Fatal("want pod and container security contexts")
		}
		if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
			t.Errorf("runAsNonRoot not set")
		}
		uid := psc.RunAsUser
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if uid == nil || *uid != imageUID {
			t.Errorf("runAsUser %s: want the image's user %d", fmtPtr(uid), imageUID)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("readOnlyRootFilesystem not set")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("allowPrivilegeEscalation not false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("privileged")
		}
		if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
			t.Errorf("capabilities %v: want drop ALL, add none", sc.Capabilities)
		}
		if env["CACHENODE_REDIS_SERVER"] != "" {
			v := volumeAt(spec, c, imageTmpDir)
			if v == nil || v.EmptyDir == nil || mountAt(c, imageTmpDir).ReadOnly {
				t.Errorf("no writable emptyDir on %s: the node's Redis works there and the root filesystem is read-only", imageTmpDir)
			}
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("automountServiceAccountToken: the node needs no Kubernetes API token")
		}
	})

	t.Run("cluster secret", func(t *testing.T) {
		file := env["CACHENODE_CLUSTER_SECRET_FILE"]
		if file == "" {
			t.Fatal("CACHENODE_CLUSTER_SECRET_FILE unset: without a secret the node refuses to gossip beyond loopback")
		}
		dir, base := path.Split(file)
		dir = path.Clean(dir)
		v := volumeAt(spec, c, dir)
		if v == nil || v.Secret == nil {
			t.Fatalf("%s: no Secret volume mounted at %s", file, dir)
		}
		if !mountAt(c, dir).ReadOnly {
			t.Errorf("secret mount %s not read-only", dir)
		}
		key := base
		if len(v.Secret.Items) > 0 {
			key = ""
			for _, it := range v.Secret.Items {
				if it.Path == base {
					key = it.Key
				}
			}
			if key == "" {
				t.Fatalf("Secret %s: no item mapped to %s", v.Secret.SecretName, base)
			}
		}
		if v.Secret.Optional != nil && *v.Secret.Optional {
			t.Errorf("Secret %s optional: a pod without it fails to start anyway, later and less clearly", v.Secret.SecretName)
		}
		// Secret files belong to root, and with fsGroup to that group:
		// the node's user reads the file through the group.
		mode := int32(0o644)
		if v.Secret.DefaultMode != nil {
			mode = *v.Secret.DefaultMode
		}
		switch fsGroup := spec.SecurityContext.FSGroup; {
		case fsGroup == nil || *fsGroup != imageUID:
			t.Errorf("fsGroup %s: want %d, the group through which the node's user reads the secret", fmtPtr(fsGroup), imageUID)
		case mode&0o040 == 0:
			t.Errorf("secret file mode %o: no group read, user %d cannot read it", mode, imageUID)
		case mode&0o007 != 0:
			t.Errorf("secret file mode %o: open to others; 0440 with fsGroup suffices", mode)
		}
		// The documented command creates exactly this Secret and key.
		doc, err := os.ReadFile(filepath.Join(moduleRoot, docsKubernetes))
		if err != nil {
			t.Fatal(err)
		}
		cmd := fmt.Sprintf("kubectl create secret generic %s", v.Secret.SecretName)
		if !bytes.Contains(doc, []byte(cmd)) || !bytes.Contains(doc, []byte("--from-literal="+key+"=")) {
			t.Errorf("%s does not document `%s --from-literal=%s=...`", docsKubernetes, cmd, key)
		}
	})

	t.Run("anti-affinity", func(t *testing.T) {
		a := spec.Affinity
		if a == nil || a.PodAntiAffinity == nil {
			t.Fatal("no pod anti-affinity")
		}
		var terms []corev1.PodAffinityTerm
		terms = append(terms, a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution...)
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			terms = append(terms, w.PodAffinityTerm)
		}
		ok := false
		for _, term := range terms {
			sel, err := metav1.LabelSelectorAsSelector(term.LabelSelector)
			if err == nil && !sel.Empty() && sel.Matches(podLabels) && term.TopologyKey == corev1.LabelHostname {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no anti-affinity term on %s selecting the peercache pods", corev1.LabelHostname)
		}
	})
}

// containerEnv returns the container's environment: literal values, and
// "fieldRef:PATH" (etc.) for values from elsewhere. Duplicates fail.
func containerEnv(t *testing.T, c *corev1.Container) nodeEnv {
	t.Helper()
	if len(c.EnvFrom) > 0 {
		t.Errorf("envFrom: every variable should be visible in the manifest")
	}
	env := nodeEnv{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s set twice", e.Name)
		}
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = e.Value
		case vf.FieldRef != nil:
			env[e.Name] = "fieldRef:" + vf.FieldRef.FieldPath
		case vf.ResourceFieldRef != nil:
			env[e.Name] = "resourceFieldRef:" + vf.ResourceFieldRef.Resource
		default:
			env[e.Name] = "valueFrom"
		}
	}
	return env
}

// targetPort resolves a (possibly named) port of the container; 0 when
// the container has no such port.
func targetPort(c *corev1.Container, p intstr.IntOrString, proto corev1.Protocol) int {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, cp := range c.Ports {
		cpProto := cp.Protocol
		if cpProto == "" {
			cpProto = corev1.ProtocolTCP
		}
		if cpProto != proto {
			continue
		}
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && int(cp.ContainerPort) == p.IntValue()) {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

// servicePort reports whether s has a port of proto whose target is the
// container's port n.
func servicePort(t *testing.T, s *corev1.Service, c *corev1.Container, n int, proto corev1.Protocol) bool {
	t.Helper()
	for _, sp := range s.Spec.Ports {
		spProto := sp.Protocol
		if spProto == "" {
			spProto = corev1.ProtocolTCP
		}
		tp := sp.TargetPort
		if tp.Type == intstr.Int && tp.IntVal == 0 {
			tp = intstr.FromInt32(sp.Port)
		}
		if spProto == proto && targetPort(c, tp, proto) == n {
			return true
		}
	}
	return false
}

// fmtPtr formats an optional field: its value, or "unset".
func fmtPtr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// mountAt returns the container's mount at dir (a zero mount if none).
func mountAt(c *corev1.Container, dir string) corev1.VolumeMount {
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == dir {
			return m
		}
	}
	return corev1.VolumeMount{}
}

// volumeAt returns the volume mounted at dir, or nil.
func volumeAt(spec *corev1.PodSpec, c *corev1.Container, dir string) *corev1.Volume {
	m := mountAt(c, dir)
	if m.Name == "" {
		return nil
	}
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == m.Name {
			return &spec.Volumes[i]
		}
	}
	return nil
}
