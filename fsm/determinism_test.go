package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"reflect"
	"testing"

	"github.com/hashicorp/raft"
)

// randomLog builds a log of n entries from a seeded generator: sets (with
// and without TTL, conditions and flags), overwrites, deletes, counters,
// touches, reaper and eviction commands, prefix deletes, batches, member
// changes, configuration entries, retried request ids, and a leader clock
// that sometimes steps back (a new leader with a slower clock).
func randomLog(seed int64, n int) []*raft.Log {
	rng := rand.New(rand.NewSource(seed))
	prefixes := []string{"a/", "b/", "c/", ""}
	key := func() []byte {
		return []byte(fmt.Sprintf("%s%03d", prefixes[rng.Intn(len(prefixes))], rng.Intn(120)))
	}
	value := func() []byte {
		if rng.Intn(8) == 0 {
			return []byte(fmt.Sprint(rng.Intn(100) - 50)) // a counter
		}
		v := make([]byte, rng.Intn(40))
		rng.Read(v)
		return v
	}
	var b logBuilder
	clock := t0
	cond := func(c *Command) {
		switch rng.Intn(10) {
		case 0:
			c.Cond = CondAbsent
		case 1:
			c.Cond = CondExists
		case 2:
			c.Cond, c.Version = CondVersion, b.index-uint64(rng.Intn(40))
		}
	}
	written := map[string]uint64{} // key -> index of its last set (a hint: the set may have failed)
	keyCmd := func(now int64) *Command {
		c := &Command{Now: now, Key: key()}
		switch r := rng.Intn(100); {
		case r < 55:
			c.Op, c.Value = OpSet, value()
			written[string(c.Key)] = b.index + 1
			if rng.Intn(3) == 0 {
				c.ExpireAt = now + int64(rng.Intn(200)-20)*1e6 // some already past
			}
			cond(c)
			if rng.Intn(8) == 0 {
				c.Flags = uint8(rng.Intn(4))
			}
		case r < 75:
			c.Op = OpDelete
			cond(c)
		case r < 88:
			c.Op, c.By = OpIncr, int64(rng.Intn(11)-5)
			if rng.Intn(30) == 0 {
				c.By = math.MaxInt64
			}
			if rng.Intn(2) == 0 {
				c.ExpireAt = now + int64(rng.Intn(100))*1e6
			}
		default:
			c.Op = OpTouch
			if rng.Intn(2) == 0 {
				c.ExpireAt = now + int64(rng.Intn(100))*1e6
			}
		}
		return c
	}

	logs := make([]*raft.Log, 0, n)
	for len(logs) < n {
		clock += int64(rng.Intn(2e6))
		now := clock
		if rng.Intn(30) == 0 {
			now -= int64(rng.Intn(50e6))
		}
		var c *Command
		switch r := rng.Intn(100); {
		case r < 3:
			logs = append(logs, b.config())
			continue
		case r < 8:
			c = &Command{Op: OpSetMember, MemberID: fmt.Sprint("m", rng.Intn(5)), HTTPAddr: fmt.Sprint("10.0.0.1:", rng.Intn(9000)+1)}
			if rng.Intn(2) == 0 {
				c.RESPAddr = fmt.Sprint("10.0.0.1:", rng.Intn(9000)+1)
			}
		case r < 9:
			c = &Command{Op: OpRemoveMember, MemberID: fmt.Sprint("m", rng.Intn(5))}
		case r < 13:
			c = &Command{Op: OpExpire}
			for i := rng.Intn(6); i >= 0; i-- {
				c.Keys = append(c.Keys, key())
			}
		case r < 16:
			c = &Command{Op: OpEvict}
			for i := rng.Intn(4); i >= 0; i-- {
				k := key()
				c.Keys = append(c.Keys, k)
				c.Versions = append(c.Versions, written[string(k)])
			}
		case r < 17:
			c = &Command{Op: OpDeletePrefix, Key: []byte(prefixes[rng.Intn(3)] + fmt.Sprint(rng.Intn(2)))}
			if rng.Intn(10) == 0 {
				c.Key = nil // flush
			} else if rng.Intn(2) == 0 {
				c.Op, c.Limit = OpDeletePrefixChunk, 1+rng.Intn(3)
			}
		case r < 25:
			c = &Command{Op: OpBatch, Atomic: rng.Intn(2) == 0}
			for i := rng.Intn(6); i >= 0; i-- {
				c.Cmds = append(c.Cmds, keyCmd(now))
			}
		default:
			c = keyCmd(now)
		}
		c.Now = now
		if rng.Intn(10) == 0 {
			c.ReqID = []byte(fmt.Sprint("req-", rng.Intn(300))) // retries repeat ids
		}
		logs = append(logs, b.cmd(*c))
	}
	return logs
}

func applySingly(f *FSM, logs []*raft.Log) []interface{} {
	out := make([]interface{}, 0, len(logs))
	for _, l := range logs {
		out = append(out, f.Apply(l))
	}
	return out
}

func applyBatched(f *FSM, logs []*raft.Log, rng *rand.Rand) []interface{} {
	out := make([]interface{}, 0, len(logs))
	for len(logs) > 0 {
		n := min(1+rng.Intn(64), len(logs))
		out = append(out, f.ApplyBatch(logs[:n])...)
		logs = logs[n:]
	}
	return out
}

// fullView adds the expiry index, which the digest does not cover.
type fullView struct {
	view
	TTLIndex [][]byte
}

func fullViewOf(f *FSM) fullView {
	return fullView{viewOf(f), f.Expired(math.MaxInt64, math.MaxInt32)}
}

func TestDeterminism(t *testing.T) {
	const n = 4000
	logs := randomLog(42, n)
	mid := n / 2

	a := New(nil) // one entry at a time
	resA := applySingly(a, logs[:mid])
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	resA = append(resA, applySingly(a, logs[mid:])...)

	b := New(nil) // random-sized batches, as Raft delivers them
	resB := applyBatched(b, logs, rand.New(rand.NewSource(7)))

	// c starts from a's midway snapshot, persisted only now (after a moved
	// on), then replays the rest of the log.
	c := New(nil)
	if err := restore(c, persist(t, snap)); err != nil {
		t.Fatal(err)
	}
	if c.AppliedIndex() != logs[mid-1].Index {
		t.Fatalf("restored AppliedIndex %d, want %d", c.AppliedIndex(), logs[mid-1].Index)
	}
	resC := applyBatched(c, logs[mid:], rand.New(rand.NewSource(8)))

	va, vb, vc := fullViewOf(a), fullViewOf(b), fullViewOf(c)
	if !reflect.DeepEqual(va, vb) {
		t.Errorf("Apply and ApplyBatch diverged:\nsingle %+v\nbatch  %+v", va.view, vb.view)
	}
	if !reflect.DeepEqual(va, vc) {
		t.Errorf("restored replica diverged:\noriginal %+v\nrestored %+v", va.view, vc.view)
	}
	if !reflect.DeepEqual(resA, resB) {
		t.Errorf("Apply and ApplyBatch returned different results")
	}
	if !reflect.DeepEqual(resA[mid:], resC) {
		for i := range resC {
			if !reflect.DeepEqual(resA[mid+i], resC[i]) {
				t.Errorf("entry %d: original %+v, restored %+v", mid+i+1, resA[mid+i], resC[i])
				break
			}
		}
	}
	if !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, c)) {
		t.Errorf("snapshots of the original and the restored replica differ")
	}

	// The log must have exercised what it claims to, or equality is cheap.
	var condFailed, dups, deleted int
	for _, r := range resA {
		if r, ok := r.(*Result); ok {
			if errors.Is(r.Err, ErrConditionFailed) {
				condFailed++
			}
			if r.Duplicate {
				dups++
			}
			if r.Deleted {
				deleted++
			}
		}
	}
	st := a.Stats()
	t.Logf("final: %d keys, %d bytes, %+v, %d members; %d failed conditions, %d duplicates, %d deletes, %d ttl entries",
		st.Keys, st.Bytes, st.Counters, len(va.Members), condFailed, dups, deleted, len(va.TTLIndex))
	if st.Keys < 50 || condFailed == 0 || dups == 0 || deleted == 0 || len(va.TTLIndex) == 0 ||
		st.Counters.Expirations == 0 || st.Counters.Evictions == 0 || len(va.Members) == 0 || len(va.RESPMembers) == 0 {
		t.Errorf("the random log did not exercise every kind of change")
	}
}

// TestDeterminismNegativeControl shows the comparison can fail: the same
// log with one command changed ends in a different digest.
func TestDeterminismNegativeControl(t *testing.T) {
	logs := randomLog(42, 4000)
	a := New(nil)
	applySingly(a, logs)

	// Change the value of the last plain set: nothing later rewrites it.
	changed := append([]*raft.Log(nil), logs...)
	for i := len(changed) - 1; ; i-- {
		if changed[i].Type != raft.LogCommand {
			continue
		}
		c, err := Decode(changed[i].Data)
		if err != nil {
			t.Fatal(err)
		}
		if c.Op != OpSet || c.Cond != CondNone || c.ReqID != nil {
			continue
		}
		c.Value = append(append([]byte(nil), c.Value...), '!')
		l := *changed[i]
		l.Data = c.Encode(nil)
		changed[i] = &l
		t.Logf("changed entry %d (%q)", l.Index, c.Key)
		break
	}
	b := New(nil)
	applySingly(b, changed)

	da, _ := a.Digest()
	db, _ := b.Digest()
	if da == db {
		t.Fatalf("one changed command left the digest equal (%s)", da)
	}
	// And the unchanged log reproduces the digest exactly.
	c := New(nil)
	applyBatched(c, logs, rand.New(rand.NewSource(1)))
	if dc, _ := c.Digest(); dc != da {
		t.Fatalf("same log, different digest: %s vs %s", da, dc)
	}
}
