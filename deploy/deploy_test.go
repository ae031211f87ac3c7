// Package deploy holds no code: its test checks the deployment files
// beside it (Kubernetes manifests, compose files, the systemd unit) against
// the binary's own flags, so a renamed flag or port cannot leave them
// stale. The Kubernetes files are checked statically only: they are
// decoded strictly into the k8s.io/api types (a test-only dependency); no
// Kubernetes cluster runs them here.
package deploy

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/raftcache/raftcache/cli"
)

// probePaths are the paths the binary serves without credentials for
// probes (transport/server.go).
var probePaths = map[string]bool{"/livez": true, "/readyz": true}

// manifests decodes every document of every file in deploy/kubernetes,
// strictly: an unknown or misspelt field fails.
func manifests(t *testing.T) (sets []appsv1.StatefulSet, svcs []corev1.Service, pdbs []policyv1.PodDisruptionBudget) {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var meta struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var into any
			switch meta.Kind {
			case "StatefulSet":
				sets = append(sets, appsv1.StatefulSet{})
				into = &sets[len(sets)-1]
			case "Service":
				svcs = append(svcs, corev1.Service{})
				into = &svcs[len(svcs)-1]
			case "PodDisruptionBudget":
				pdbs = append(pdbs, policyv1.PodDisruptionBudget{})
				into = &pdbs[len(pdbs)-1]
			default:
				t.Fatalf("%s document %d: kind %q is not checked by this test", f, i, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i, meta.Kind, err)
			}
		}
	}
	return sets, svcs, pdbs
}

// checkArgs checks that args (a node command line, flags as --name=value
// or --name value) names only flags `raftcache node` accepts, and returns
// the flag values by name.
func checkArgs(t *testing.T, where string, args []string) map[string]string {
	t.Helper()
	flags, _ := cli.NodeSettings()
	known := map[string]bool{}
	for _, f := range flags {
		known[f] = true
	}
	if len(args) == 0 || args[0] != "node" {
		t.Fatalf("%s: arguments %q do not run `raftcache node`", where, args)
	}
	vals := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			t.Errorf("%s: stray argument %q", where, a)
			continue
		}
		name, val, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case !known[name]:
			t.Errorf("%s: `raftcache node` has no flag --%s", where, name)
		}
		if !ok && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			val, i = args[i+1], i+1
		}
		vals[name] = val
	}
	return vals
}

func port(t *testing.T, where, hostport string) string {
	t.Helper()
	i := strings.LastIndex(hostport, ":")
	if i < 0 {
		t.Fatalf("%s: %q has no port", where, hostport)
	}
	return hostport[i+1:]
}

func TestKubernetesManifests(t *testing.T) {
	sets, svcs, pdbs := manifests(t)
	if len(sets) != 1 || len(pdbs) != 1 || len(svcs) != 2 {
		t.Fatalf("want one StatefulSet, two Services and one PodDisruptionBudget; got %d, %d, %d", len(sets), len(svcs), len(pdbs))
	}
	ss := sets[0]
	spec := ss.Spec.Template.Spec
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 3 || ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("StatefulSet: want 3 replicas managed in parallel, got %v %q", ss.Spec.Replicas, ss.Spec.PodManagementPolicy)
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("terminationGracePeriodSeconds %v, want at least 30 (leadership hand-off and drain)", g)
	}
	if spec.SecurityContext == nil || spec.SecurityContext.FSGroup == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
		t.Error("pod securityContext: want fsGroup and runAsNonRoot")
	}
	if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		t.Error("no pod anti-affinity: two members could share a machine")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(spec.Containers))
	}
	ct := spec.Containers[0]
	if ct.Lifecycle != nil && ct.Lifecycle.PreStop != nil {
		t.Error("a preStop hook: SIGTERM already hands leadership over")
	}
	if ct.Resources.Limits.Memory().IsZero() {
		t.Error("no memory limit: the default --max-memory is a share of it")
	}
	vals := checkArgs(t, "StatefulSet container", ct.Args)
	named := map[string]int32{}
	for _, p := range ct.Ports {
		named[p.Name] = p.ContainerPort
	}
	for flag, name := range map[string]string{"http-addr": "http", "raft-addr": "raft", "resp-addr": "resp",
		"http-advertise": "http", "raft-advertise": "raft", "resp-advertise": "resp"} {
		if vals[flag] == "" {
			t.Errorf("container args: no --%s", flag)
			continue
		}
		if p := port(t, "--"+flag, vals[flag]); p != fmt.Sprint(named[name]) {
			t.Errorf("--%s port %s, but containerPort %q is %d", flag, p, name, named[name])
		}
	}
	if vals["bootstrap-expect"] != "3" || len(strings.Split(vals["join"], ",")) != 3 {
		t.Errorf("want --bootstrap-expect 3 and three --join URLs, got %q and %q", vals["bootstrap-expect"], vals["join"])
	}
	for _, u := range strings.Split(vals["join"], ",") {
		if !strings.Contains(u, "."+ss.Spec.ServiceName+":"+fmt.Sprint(named["http"])) {
			t.Errorf("--join URL %q is not a pod name under the headless Service %q on the HTTP port", u, ss.Spec.ServiceName)
		}
	}
	for what, p := range map[string]*corev1.Probe{"startup": ct.StartupProbe, "liveness": ct.LivenessProbe, "readiness": ct.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", what)
			continue
		}
		if !probePaths[p.HTTPGet.Path] {
			t.Errorf("%s probe path %q is not one the binary serves open", what, p.HTTPGet.Path)
		}
		if p.HTTPGet.Port.StrVal != "http" {
			t.Errorf("%s probe port %v, want the named port http", what, p.HTTPGet.Port)
		}
	}
	if ct.ReadinessProbe != nil && ct.ReadinessProbe.HTTPGet.Path != "/readyz" || ct.LivenessProbe != nil && ct.LivenessProbe.HTTPGet.Path != "/livez" {
		t.Error("liveness must probe /livez and readiness /readyz")
	}
	var headless bool
	for _, s := range svcs {
		for _, p := range s.Spec.Ports {
			if _, ok := named[p.TargetPort.StrVal]; !ok {
				t.Errorf("Service %s port %s targets %v, not a named container port", s.Name, p.Name, p.TargetPort)
			}
			if p.Port != named[p.TargetPort.StrVal] {
				t.Errorf("Service %s port %s is %d, the container's is %d", s.Name, p.Name, p.Port, named[p.TargetPort.StrVal])
			}
		}
		if s.Name == ss.Spec.ServiceName {
			headless = s.Spec.ClusterIP == corev1.ClusterIPNone && s.Spec.PublishNotReadyAddresses
		}
	}
	if !headless {
		t.Errorf("the StatefulSet's Service %q must be headless and publish not-ready addresses", ss.Spec.ServiceName)
	}
	if p := pdbs[0].Spec; p.MaxUnavailable == nil || p.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget: want maxUnavailable 1, got %v", p.MaxUnavailable)
	}
}

// TestComposeFiles checks the members' command lines in compose.yaml
// (podman-compose runs it in cluster-test's container test).
func TestComposeFiles(t *testing.T) {
	var compose struct {
		XRaftcache struct {
			Command []string `json:"command"`
		} `json:"x-raftcache"`
		Services map[string]struct {
			Hostname string   `json:"hostname"`
			Ports    []string `json:"ports"`
		} `json:"services"`
	}
	b, err := os.ReadFile("compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	vals := checkArgs(t, "compose.yaml", compose.XRaftcache.Command)
	if len(compose.Services) != 3 {
		t.Fatalf("want three services, got %d", len(compose.Services))
	}
	for name, s := range compose.Services {
		if s.Hostname != name || !strings.Contains(vals["join"], "http://"+name+":"+port(t, "--http-addr", vals["http-addr"])) {
			t.Errorf("service %s: hostname %q, and --join %q must list it", name, s.Hostname, vals["join"])
		}
	}
	if _, err := os.Stat("compose.fastapi.yaml"); err != nil {
		t.Error(err)
	}
}

// TestSystemdUnit checks the environment file's names and, where
// systemd-analyze exists, verifies the unit (with ExecStart pointed at a
// binary that exists here).
func TestSystemdUnit(t *testing.T) {
	_, envs := cli.NodeSettings()
	known := map[string]bool{}
	for _, e := range envs {
		known[e] = true
	}
	env, err := os.ReadFile("systemd/raftcache.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(env), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		name, _, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(name, "RAFTCACHE_") || strings.Contains(name, " ") {
			continue
		}
		if !known[name] {
			t.Errorf("raftcache.env sets %s, which `raftcache node` does not read", name)
		}
	}
	unit, err := os.ReadFile("systemd/raftcache.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"EnvironmentFile=", "Restart=on-failure", "NoNewPrivileges=yes", "ProtectSystem=strict"} {
		if !bytes.Contains(unit, []byte("\n"+want)) {
			t.Errorf("raftcache.service lacks %s", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit is checked by the lines above only")
	}
	bin, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true(1) to stand in for the binary")
	}
	abs, _ := filepath.Abs("systemd/raftcache.env")
	u := strings.ReplaceAll(string(unit), "/usr/local/bin/raftcache", bin)
	u = strings.ReplaceAll(u, "/etc/raftcache/raftcache.env", abs)
	path := filepath.Join(t.TempDir(), "raftcache.service")
	if err := os.WriteFile(path, []byte(u), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestGenCertsNames: scripts/gen-certs.sh puts the names it is given in
// the HTTPS certificate, and a wildcard for the headless Service verifies
// for every pod's name (one label) and nothing deeper.
func TestGenCertsNames(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	out, err := exec.Command("../scripts/gen-certs.sh", dir, "*.raftcache-peers", "*.raftcache-peers.default.svc.cluster.local", "rc1").CombinedOutput()
	if err != nil {
		t.Fatalf("gen-certs.sh: %v\n%s", err, out)
	}
	load := func(name string) *x509.Certificate {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	roots := x509.NewCertPool()
	roots.AddCert(load("ca.pem"))
	server := load("server.pem")
	for host, ok := range map[string]bool{
		"raftcache-0.raftcache-peers": true, "raftcache-2.raftcache-peers.default.svc.cluster.local": true,
		"rc1": true, "localhost": true, "127.0.0.1": true,
		"a.raftcache-0.raftcache-peers": false, "raftcache-peers": false, "rc2": false,
	} {
		_, err := server.Verify(x509.VerifyOptions{DNSName: host, Roots: roots})
		if (err == nil) != ok {
			t.Errorf("server certificate for %q: %v, want valid=%v", host, err, ok)
		}
	}
}
