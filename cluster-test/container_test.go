package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The container test runs the image of scripts/image.sh the way users
// run it: three containers on a podman network, bound to 0.0.0.0,
// advertising their names, with identical cluster flags. It needs podman
// (Debian's 4.3 with runc; deploy/containers.conf holds the settings that
// work on hosts like CI) and skips without it.

// pod is one test's podman world: the image, the network, and the names
// every container and volume carries (so parallel runs do not collide).
type pod struct {
	t      *testing.T
	bin    string
	conf   string
	prefix string
	image  string
	net    string
	pinned bool // the network's bridge MAC is pinned (pinBridgeMAC)
}

func newPod(t *testing.T) *pod {
	t.Helper()
	bin, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed: the container test needs it (apt-get install podman runc podman-compose; .ci/run installs them)")
	}
	conf, err := filepath.Abs("../deploy/containers.conf")
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{t: t, bin: bin, conf: conf, prefix: fmt.Sprintf("rct%06x", rand.IntN(1<<24))}
	p.image = "localhost/raftcache:" + p.prefix
	p.net = p.prefix + "-net"
	// The image around the binary TestMain built (static).
	build := exec.Command("../scripts/image.sh", p.image)
	build.Env = append(os.Environ(), "CONTAINERS_CONF="+conf, "RAFTCACHE_BIN="+binary, "CONTAINER_ENGINE="+bin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { p.try("rmi", "-f", p.image) })
	p.must("network", "create", p.net)
	t.Cleanup(func() { p.try("network", "rm", "-f", p.net) })
	return p
}

// run runs podman with args and returns its trimmed output.
func (p *pod) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return strings.TrimSpace(string(out)), nil
}

func (p *pod) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

func (p *pod) try(args ...string) { _, _ = p.run(args...) }

// member is one container: name is its hostname and network alias (what
// the others dial), container its podman name.
type member struct {
	name, container, volume string
}

func (p *pod) member(name string) member {
	return member{name: name, container: p.prefix + "-" + name, volume: p.prefix + "-" + name + "-data"}
}

// start runs m with args after `node`, on its volume, with ip if not "".
func (p *pod) start(m member, ip string, args []string) {
	p.t.Helper()
	run := []string{"run", "-d", "--name", m.container, "--hostname", m.name, "--network", p.net,
		"--network-alias", m.name, "-v", m.volume + ":/data"}
	if ip != "" {
		run = append(run, "--ip", ip)
	}
	run = append(run, p.image, "node")
	p.must(append(run, args...)...)
	if !p.pinned {
		p.pinBridgeMAC()
	}
	p.t.Cleanup(func() {
		if p.t.Failed() {
			out, _ := p.run("logs", "--tail", "60", m.container)
			p.t.Logf("---- last log lines of %s ----\n%s", m.name, out)
		}
		p.try("rm", "-f", "-t", "0", m.container)
		p.try("volume", "rm", "-f", m.volume)
	})
}

// pinBridgeMAC gives the network's bridge the MAC it has now, once its
// first container is up. Netavark before 1.9 (Debian 12 has 1.4) leaves
// the MAC unset, so the kernel gives the bridge the lowest MAC of its
// ports: when a container with a lower MAC starts, or the one with the
// lowest goes (the restarted leader), the bridge's MAC changes under the
// other containers' ARP entries for the gateway, which is also the
// network's DNS server. Their lookups of each other's names then time out
// for up to a minute (seen in CI: "lookup rc1: i/o timeout" on both
// survivors while the restarted rc1 could not be reached). Netavark 1.9
// pins the MAC itself (containers/netavark#833); setting it explicitly is
// what it does, and an explicitly set MAC stays.
func (p *pod) pinBridgeMAC() {
	p.t.Helper()
	p.pinned = true
	dev, err := p.run("network", "inspect", "-f", "{{.NetworkInterface}}", p.net)
	if err != nil || dev == "" {
		p.t.Logf("bridge MAC not pinned (no interface name: %v): container restarts may lose DNS for a while", err)
		return
	}
	mac, err := os.ReadFile("/sys/class/net/" + dev + "/address")
	if err != nil {
		// Rootless podman keeps the bridge in its own namespace.
		p.t.Logf("bridge MAC not pinned (%v): container restarts may lose DNS for a while", err)
		return
	}
	out, err := exec.Command("ip", "link", "set", "dev", dev, "address", strings.TrimSpace(string(mac))).CombinedOutput()
	if err != nil {
		p.t.Logf("bridge MAC not pinned (ip link set: %v %s): container restarts may lose DNS for a while", err, out)
	}
}

// remove kills m's container (its volume stays).
func (p *pod) remove(m member) { p.must("rm", "-f", "-t", "0", m.container) }

// ip is m's address on the test network.
func (p *pod) ip(m member) string {
	p.t.Helper()
	return p.must("inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, p.net), m.container)
}

// cli runs the raftcache CLI inside m's container against its own name,
// so redirects to the leader's advertised name resolve as they do for an
// application in the network.
func (p *pod) cli(m member, args ...string) (string, error) {
	return p.run(append([]string{"exec", m.container, "/raftcache", "--endpoints", "http://" + m.name + ":7070"}, args...)...)
}

// hostGet is GET http://ip:7070path from the test process.
func hostGet(ip, path string, out any) (int, error) {
	resp, err := plainClient.Get("http://" + net.JoinHostPort(ip, "7070") + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode, nil
}

func waitStatus(t *testing.T, ip, path string, want int) {
	t.Helper()
	Eventually(t, fmt.Sprintf("GET %s on %s answers %d", path, ip, want), func() error {
		code, err := hostGet(ip, path, nil)
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
}

// containerArgs are every member's flags: identical on all three.
func containerArgs(names []string) []string {
	var join []string
	for _, n := range names {
		join = append(join, "http://"+n+":7070")
	}
	return []string{"--data-dir=/data", "--http-addr=0.0.0.0:7070", "--raft-addr=0.0.0.0:7071", "--resp-addr=0.0.0.0:6379",
		"--bootstrap-expect=3", "--join=" + strings.Join(join, ","),
		"--raft-heartbeat-timeout=1s", "--promote-after=8s"} // long enough to see a wiped member as a learner
}

// otherIP is an address of ip's /24 other than ip and the gateway.
func otherIP(ip string) string {
	parts := strings.Split(ip, ".")
	last := "201"
	if parts[3] == last {
		last = "202"
	}
	return strings.Join(append(parts[:3], last), ".")
}

func TestContainerCluster(t *testing.T) {
	p := newPod(t)
	names := []string{"rc1", "rc2", "rc3"}
	ms := map[string]member{}
	for _, n := range names {
		ms[n] = p.member(n)
	}
	args := containerArgs(names)
	for _, n := range names {
		p.start(ms[n], "", args)
	}
	ips := map[string]string{}
	for _, n := range names {
		ips[n] = p.ip(ms[n])
		waitStatus(t, ips[n], "/livez", http.StatusOK)
	}
	for _, n := range names {
		waitStatus(t, ips[n], "/readyz", http.StatusOK)
	}
	leader := containerLeader(t, ips, names)
	var follower string
	for _, n := range names {
		if n != leader {
			follower = n
		}
	}
	// Every member registers its name, never 0.0.0.0 or an IP (a founder
	// registers its HTTP address once the cluster has a leader).
	Eventually(t, "every member registered under its name", func() error {
		var v ClusterView
		if _, err := hostGet(ips[leader], "/v1/cluster", &v); err != nil {
			return err
		}
		for _, m := range v.Members {
			if m.HTTPAddr != m.ID+":7070" || m.RaftAddr != m.ID+":7071" {
				return fmt.Errorf("member %s registered HTTP %q and Raft %q, want its name", m.ID, m.HTTPAddr, m.RaftAddr)
			}
		}
		return nil
	})

	// Write through a follower (redirected to the leader's name), read
	// through another member.
	if out, err := p.cli(ms[follower], "set", "greeting", "hello"); err != nil {
		t.Fatalf("put through %s: %v %s", follower, err, out)
	}
	reader := names[0]
	if reader == follower {
		reader = names[1]
	}
	if out, err := p.cli(ms[reader], "get", "greeting"); err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("get through %s: %q, %v", reader, out, err)
	}

	// Kill the leader and start it again on its volume with another IP:
	// it rejoins under its name.
	oldIP := ips[leader]
	p.remove(ms[leader])
	p.start(ms[leader], otherIP(oldIP), args)
	ips[leader] = p.ip(ms[leader])
	if ips[leader] == oldIP || ips[leader] != otherIP(oldIP) {
		t.Fatalf("restarted %s has IP %s (was %s, asked for %s)", leader, ips[leader], oldIP, otherIP(oldIP))
	}
	t.Logf("%s (the leader) restarted with IP %s instead of %s", leader, ips[leader], oldIP)
	containerVoters(t, ips, names, 3)
	waitStatus(t, ips[leader], "/readyz", http.StatusOK)
	if out, err := p.cli(ms[leader], "get", "greeting"); err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("get through the restarted %s: %q, %v", leader, out, err)
	}

	// Wipe a follower's volume and start it with the same flags: it comes
	// back as a non-voter, catches up, and is promoted; it never forms a
	// cluster of its own.
	leader = containerLeader(t, ips, names)
	for _, n := range names {
		if n != leader {
			follower = n
		}
	}
	p.remove(ms[follower])
	p.must("volume", "rm", "-f", ms[follower].volume)
	p.start(ms[follower], "", args)
	ips[follower] = p.ip(ms[follower])
	sawLearner := false
	Eventually(t, follower+" back as a voter after catching up", func() error {
		var own ClusterView
		if code, err := hostGet(ips[follower], "/v1/cluster", &own); err == nil && code == http.StatusOK {
			if own.State == "Leader" || (len(own.Members) == 1 && own.Members[0].ID == follower) {
				t.Fatalf("the wiped %s formed a cluster of its own: %+v", follower, own)
			}
		}
		var lv ClusterView
		if _, err := hostGet(ips[leader], "/v1/cluster", &lv); err != nil {
			return err
		}
		for _, m := range lv.Members {
			if m.ID != follower {
				continue
			}
			if !m.Voter {
				sawLearner = true
				return fmt.Errorf("%s is a %s", follower, m.State)
			}
			if !sawLearner {
				return fmt.Errorf("%s is still listed as a voter under its old data directory", follower)
			}
			return nil
		}
		return fmt.Errorf("%s not listed", follower)
	})
	containerVoters(t, ips, names, 3)
	if out, err := p.cli(ms[follower], "get", "--stale", "greeting"); err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("stale get on the wiped %s after catching up: %q, %v", follower, out, err)
	}
}

// containerLeader waits for the member every member names as leader.
func containerLeader(t *testing.T, ips map[string]string, names []string) string {
	t.Helper()
	var leader string
	Eventually(t, "one leader named by every member", func() (err error) {
		leader, err = agreedLeader(ips, names)
		return err
	})
	return leader
}

// agreedLeader is the leader every member names, or an error.
func agreedLeader(ips map[string]string, names []string) (string, error) {
	leader := ""
	for _, n := range names {
		var v ClusterView
		if _, err := hostGet(ips[n], "/v1/cluster", &v); err != nil {
			return "", err
		}
		if v.Leader == nil {
			return "", fmt.Errorf("%s knows no leader", n)
		}
		if leader != "" && v.Leader.ID != leader {
			return "", fmt.Errorf("%s names %s, another %s", n, v.Leader.ID, leader)
		}
		leader = v.Leader.ID
	}
	return leader, nil
}

// containerVoters waits until the leader lists want voters, all of them
// among names, and every member is ready.
func containerVoters(t *testing.T, ips map[string]string, names []string, want int) {
	t.Helper()
	Eventually(t, fmt.Sprintf("%d voters, all ready", want), func() error {
		leader, err := agreedLeader(ips, names)
		if err != nil {
			return err
		}
		var v ClusterView
		if _, err := hostGet(ips[leader], "/v1/cluster", &v); err != nil {
			return err
		}
		voters := 0
		for _, m := range v.Members {
			if m.Voter {
				voters++
			}
		}
		if voters != want || len(v.Members) != want {
			return fmt.Errorf("%d voters of %d members", voters, len(v.Members))
		}
		for _, n := range names {
			if code, err := hostGet(ips[n], "/readyz", nil); err != nil || code != http.StatusOK {
				return fmt.Errorf("%s readyz %d %v", n, code, err)
			}
		}
		return nil
	})
}

// TestContainerCompose brings deploy/compose.yaml up with podman-compose
// (its inner podman calls inherit CONTAINERS_CONF), on free host ports:
// three members form one cluster with identical flags and replicate a
// write.
func TestContainerCompose(t *testing.T) {
	p := newPod(t)
	compose, err := exec.LookPath("podman-compose")
	if err != nil {
		t.Skip("podman-compose is not installed (apt-get install podman-compose; .ci/run installs it)")
	}
	ports := map[string]string{}
	env := append(os.Environ(), "CONTAINERS_CONF="+p.conf, "RAFTCACHE_IMAGE="+p.image)
	for _, v := range []string{"RC1_HTTP", "RC2_HTTP", "RC3_HTTP", "RC1_RESP", "RC2_RESP", "RC3_RESP"} {
		_, port, _ := net.SplitHostPort(freeAddr(t, "127.0.0.1"))
		ports[v] = port
		env = append(env, v+"="+port)
	}
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, compose, append([]string{"-f", "../deploy/compose.yaml", "-p", p.prefix}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := run("logs")
			t.Logf("---- compose logs ----\n%.12000s", out)
		}
		_, _ = run("down", "-v", "-t", "0")
		p.try("network", "rm", "-f", p.prefix+"_default") // podman-compose 1.0 leaves it
	})
	if out, err := run("up", "-d"); err != nil {
		t.Fatalf("podman-compose up: %v\n%s", err, out)
	}
	// The host reaches each member through its published port.
	get := func(port, path string, out any) (int, error) {
		resp, err := plainClient.Get("http://127.0.0.1:" + port + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if out != nil && resp.StatusCode == http.StatusOK {
			return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode, nil
	}
	Eventually(t, "three voters, every member ready", func() error {
		for _, v := range []string{"RC1_HTTP", "RC2_HTTP", "RC3_HTTP"} {
			if code, err := get(ports[v], "/readyz", nil); err != nil || code != http.StatusOK {
				return fmt.Errorf("%s readyz %d %v", v, code, err)
			}
		}
		var v ClusterView
		if _, err := get(ports["RC1_HTTP"], "/v1/cluster", &v); err != nil {
			return err
		}
		voters := 0
		for _, m := range v.Members {
			if m.Voter {
				voters++
			}
		}
		if voters != 3 || v.Leader == nil {
			return fmt.Errorf("%d voters, leader %v", voters, v.Leader)
		}
		return nil
	})
	exec1 := func(svc string, args ...string) (string, error) {
		return p.run(append([]string{"exec", p.prefix + "_" + svc + "_1", "/raftcache", "--endpoints", "http://" + svc + ":7070"}, args...)...)
	}
	if out, err := exec1("rc2", "set", "greeting", "hello"); err != nil {
		t.Fatalf("set through rc2: %v %s", err, out)
	}
	if out, err := exec1("rc3", "get", "greeting"); err != nil || !strings.Contains(out, "hello") {
		t.Fatalf("get through rc3: %q, %v", out, err)
	}
}
