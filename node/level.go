package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/raftcache/raftcache/fsm"
)

// Feature levels (see fsm.FeatureLevel): the leader raises the cluster's
// level once every server in the Raft configuration, voter or not,
// reports a binary of at least that level, so an entry type or snapshot
// format of a level is written only when no member would fail to read it.
// A member that cannot be asked holds the level where it is: the level
// never goes down, so raising it past a member that was not heard from
// could leave that member behind for good. One exception: right after a
// --bootstrap-expect formation, a founder that does not answer counts at
// the level it reported in the formation exchange (founders.go).

// defaultLevelInterval is how often the leader asks the members for their
// levels; it also asks right after becoming leader and after every
// membership change it makes.
const defaultLevelInterval = 2 * time.Second

// levelTimeout bounds one round of asking every member.
const levelTimeout = 2 * time.Second

// FeatureLevel is the highest feature level this node's binary applies.
func (n *Node) FeatureLevel() uint32 { return n.fsm.Level() }

// ClusterLevel is the cluster's feature level, as applied on this node.
func (n *Node) ClusterLevel() uint32 { return n.fsm.ClusterLevel() }

// AppliedIndex is the last log index this node's state applied (a relayed
// write's id records it: resp/once.go).
func (n *Node) AppliedIndex() uint64 { return n.fsm.AppliedIndex() }

// Incarnation is the random id of this node's data directory.
func (n *Node) Incarnation() string { return n.cfg.Incarnation }

// RequireLevel returns nil if the cluster runs at feature level l or
// higher, and otherwise ErrFeatureLevel: a caller about to propose an
// entry type of level l must not, because some member could not apply it.
func (n *Node) RequireLevel(l uint32) error {
	if cl := n.ClusterLevel(); cl < l {
		return fmt.Errorf("%w: the cluster runs at feature level %d and this needs level %d (every member must run a binary of level %d or later first)",
			ErrFeatureLevel, cl, l, l)
	}
	return nil
}

// Poisoned returns nil, or ErrPoisoned (wrapping fsm.ErrPoisoned, with
// the entry's index and op) once this node met a log entry it cannot
// apply. Such a node stops its Raft and serves no reads; it needs a
// newer binary.
func (n *Node) Poisoned() error {
	if err := n.fsm.Poisoned(); err != nil {
		return fmt.Errorf("%w: %w", ErrPoisoned, err)
	}
	return nil
}

// watchPoison stops Raft once the FSM is poisoned. It must be another
// goroutine than the FSM's: raft.Shutdown waits for the FSM goroutine.
func (n *Node) watchPoison() {
	defer n.wg.Done()
	select {
	case <-n.closing:
		return
	case <-n.fsm.PoisonedCh():
	}
	select {
	case <-n.closing: // the FSM stops itself as the node closes (durable.go)
		return
	default:
	}
	if err := n.raft.Shutdown().Error(); err != nil {
		n.logger.Warn("stopping raft after the FSM stopped", "error", err)
		return
	}
	if errors.Is(n.fsm.Poisoned(), errLogSync) {
		n.logger.Info("raft stopped: this node is out of the cluster until it is restarted")
		return
	}
	n.logger.Info("raft stopped: this node is out of the cluster until it runs a binary that knows the entry")
}

// level is a member's level as a join request reports it: absent
// (0) means a binary from before levels, level 1.
func (m Member) level() uint32 { return max(m.Level, 1) }

// addrs is m's named addresses: Addrs, with HTTPAddr and RESPAddr (when
// set) as the "http" and "redis" ones.
func (m Member) addrs() map[string]string {
	out := make(map[string]string, len(m.Addrs)+2)
	for k, v := range m.Addrs {
		out[k] = v
	}
	if m.HTTPAddr != "" {
		out[fsm.AddrHTTP] = m.HTTPAddr
	}
	if m.RESPAddr != "" {
		out[fsm.AddrRedis] = m.RESPAddr
	}
	return out
}

// self is this node as a member record describes it.
func (n *Node) self() Member {
	return Member{ID: n.cfg.ID, RaftAddr: n.cfg.RaftAddr, HTTPAddr: n.cfg.HTTPAddr, RESPAddr: n.cfg.RESPAddr,
		Incarnation: n.cfg.Incarnation, Level: n.FeatureLevel()}
}

// register replicates m's record unless the log already holds it: a full
// record (OpMember) once the cluster is at level 2, the HTTP and Redis
// addresses only (OpSetMember) before, which level-1 members understand.
func (n *Node) register(ctx context.Context, m Member) error {
	if n.ClusterLevel() >= 2 {
		want := fsm.Member{ID: m.ID, Addrs: m.addrs(), Incarnation: m.Incarnation, Level: m.level()}
		if rec, ok := n.fsm.Member(m.ID); ok && reflect.DeepEqual(rec, want) {
			return nil
		}
		_, err := n.propose(ctx, &fsm.Command{Op: fsm.OpMember, MemberID: m.ID, Addrs: want.Addrs, Incarnation: want.Incarnation, Level: want.Level})
		return err
	}
	addrs := m.addrs()
	if n.fsm.MemberAddr(m.ID) == addrs[fsm.AddrHTTP] && n.fsm.MemberRESPAddr(m.ID) == addrs[fsm.AddrRedis] {
		return nil
	}
	_, err := n.propose(ctx, &fsm.Command{Op: fsm.OpSetMember, MemberID: m.ID, HTTPAddr: addrs[fsm.AddrHTTP], RESPAddr: addrs[fsm.AddrRedis]})
	return err
}

// levels is what the leader last heard from each member, for members
// whose record does not carry a level yet.
type levels struct {
	mu   sync.Mutex
	seen map[string]uint32
}

func (l *levels) get(id string) uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen[id]
}

func (l *levels) set(seen map[string]uint32) {
	l.mu.Lock()
	l.seen = seen
	l.mu.Unlock()
}

// kickLevels makes the leader check the members' levels now.
func (n *Node) kickLevels() {
	select {
	case n.levelKick <- struct{}{}:
	default:
	}
}

func (n *Node) levelLoop() {
	defer n.wg.Done()
	for {
		wait := n.cfg.levelInterval
		if n.track.pending() {
			wait = min(wait, fastProbeInterval)
		}
		t := time.NewTimer(wait)
		select {
		case <-n.closing:
			t.Stop()
			return
		case <-t.C:
		case <-n.levelKick:
			t.Stop()
		}
		if n.leaderReady() && n.canProbe() && n.Poisoned() == nil {
			n.checkLevels()
		}
	}
}

// checkLevels asks every server in the configuration for its level and
// raises the cluster level to the lowest of them (at most this binary's)
// if that is above the current one. At level 2 and above it also keeps
// the members' records up to date with the levels they report.
//
// It holds joinMu, as AddMember does, so a member joining meanwhile is
// either asked here or refused by AddMember at the raised level.
func (n *Node) checkLevels() {
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	members, err := n.Members()
	if err != nil {
		return
	}
	results := n.probeAll(members, levelTimeout)
	n.memBounds.record(results)
	got := make([]uint32, len(members))
	errs := make([]error, len(members))
	for i, r := range results {
		got[i], errs[i] = r.info.Level, r.err
	}
	seen := map[string]uint32{}
	target, known := n.FeatureLevel(), true
	var unknown, credited []string
	cur := n.ClusterLevel()
	for i, m := range members {
		if errs[i] != nil {
			if l, ok := n.founders.level(m, cur); ok {
				credited = append(credited, m.ID)
				target = min(target, l)
				continue
			}
			known = false
			unknown = append(unknown, m.ID)
			continue
		}
		n.heardFrom(m.ID, results[i].info.Incarnation, "probe")
		l := max(got[i], 1)
		seen[m.ID] = l
		target = min(target, l)
		if l < cur && n.levels.get(m.ID) != l { // once per change, not every round
			n.logger.Warn("a member runs a binary older than the cluster's feature level; it stops at the first entry it cannot apply",
				"member", m.ID, "member_level", l, "cluster_level", cur)
		}
	}
	n.levels.set(seen)
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
	defer cancel()
	defer n.checkMembers(results)
	switch {
	case target <= cur:
	case !known:
		n.logger.Debug("cluster level not raised: members did not answer", "members", strings.Join(unknown, ","), "target", target)
	default:
		if _, err := n.propose(ctx, &fsm.Command{Op: fsm.OpClusterLevel, Level: target}); err != nil {
			n.logger.Warn("raising the cluster feature level failed", "level", target, "error", err)
			return
		}
		if len(credited) > 0 {
			n.logger.Info("raised the cluster feature level: every member runs it (founders that did not answer count at the level they reported at formation)",
				"from", cur, "to", target, "founders_credited", strings.Join(credited, ","))
		} else {
			n.logger.Info("raised the cluster feature level: every member runs it", "from", cur, "to", target)
		}
	}
	if n.ClusterLevel() < 2 {
		return
	}
	for i, m := range members {
		l, ok := seen[m.ID]
		rec, has := n.fsm.Member(m.ID)
		// A record without an incarnation (registered before level 2, or
		// by a request that named none) takes the one the member reports.
		adopt := has && rec.Incarnation == "" && results[i].info.Incarnation != ""
		if !ok || !has || (rec.Level == l && !adopt) {
			continue
		}
		if m.ID == n.cfg.ID {
			rec.Incarnation = n.cfg.Incarnation
		} else if adopt {
			rec.Incarnation = results[i].info.Incarnation
		}
		if _, err := n.propose(ctx, &fsm.Command{Op: fsm.OpMember, MemberID: rec.ID, Addrs: rec.Addrs, Incarnation: rec.Incarnation, Level: l}); err != nil {
			n.logger.Debug("recording a member's level", "member", m.ID, "error", err)
			return
		}
	}
}

// incarnationFile holds the data directory's random id.
const incarnationFile = "incarnation"

// loadIncarnation returns dir's incarnation, creating it on first use.
func loadIncarnation(dir string) (string, error) {
	path := filepath.Join(dir, incarnationFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	if err := writeFileSynced(path, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}
