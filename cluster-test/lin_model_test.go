package clustertest

// The porcupine model the linearizability tests check histories against:
// one register per key. A read returns the value of the last write, or
// "not found" before any write. Every write in a history has a unique
// value, so each read names the write it saw.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// linInput is one operation as invoked.
type linInput struct {
	Key   string
	Put   bool
	Value string // the value written (Put)
}

// linOutput is what an operation returned. Ambiguous writes have no
// meaningful output: their return time is infinite.
type linOutput struct {
	Found bool   // Get: the key existed
	Value string // Get: its value
}

// linMeta is recorded for the visualization only.
type linMeta struct {
	Via    string // node the request was sent to
	Served string // X-Served-By of the final answer ("" if none)
	Status string // HTTP status or error
}

// linNotFound is the register state before any write. Written values are
// never empty, so "" is free for it.
const linNotFound = ""

// linPending is porcupine's infinite return time: an operation that may
// take effect at any time after its call.
const linPending = int64(math.MaxInt64)

var linModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(linInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return linNotFound },
	Step: func(state, input, output any) (bool, any) {
		in := input.(linInput)
		if in.Put {
			return true, in.Value
		}
		out := output.(linOutput)
		if !out.Found {
			return state.(string) == linNotFound, state
		}
		return state.(string) == out.Value, state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linInput)
		if in.Put {
			return fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
		}
		out := output.(linOutput)
		if !out.Found {
			return fmt.Sprintf("get(%s) -> not found", in.Key)
		}
		return fmt.Sprintf("get(%s) -> %s", in.Key, out.Value)
	},
	DescribeState: func(state any) string {
		if state.(string) == linNotFound {
			return "not found"
		}
		return state.(string)
	},
	DescribeOperationMetadata: func(info any) string {
		m, ok := info.(linMeta)
		if !ok {
			return ""
		}
		return fmt.Sprintf("via %s, served by %s: %s", m.Via, m.Served, m.Status)
	},
}

// linPrune drops ambiguous writes whose value no read returned. That is
// exact, not an approximation: such a write can always be linearized after
// every other operation (its return time is infinite and nothing reads its
// value), and no read depends on it. Keeping them would make the checker's
// search exponential in their number.
func linPrune(h []porcupine.Operation) (kept []porcupine.Operation, dropped int) {
	seen := map[[2]string]bool{}
	for _, op := range h {
		in := op.Input.(linInput)
		if !in.Put {
			if out := op.Output.(linOutput); out.Found {
				seen[[2]string{in.Key, out.Value}] = true
			}
		}
	}
	for _, op := range h {
		in := op.Input.(linInput)
		if in.Put && op.Return == linPending && !seen[[2]string{in.Key, in.Value}] {
			dropped++
			continue
		}
		kept = append(kept, op)
	}
	return kept, dropped
}

// linCheck checks h and, unless the result is Ok, writes porcupine's
// visualization (with annotations, e.g. the faults injected) to a file in
// dir (artifacts/ if empty) and returns its path.
func linCheck(t testing.TB, h []porcupine.Operation, notes []porcupine.Annotation, timeout time.Duration, dir string) (porcupine.CheckResult, string) {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linModel, h, timeout)
	t.Logf("porcupine: %s on %d operations in %v", res, len(h), time.Since(start).Round(time.Millisecond))
	if res == porcupine.Ok {
		return res, ""
	}
	if res == porcupine.Illegal {
		for _, part := range linModel.Partition(h) {
			if porcupine.CheckOperationsTimeout(linModel, part, timeout) != porcupine.Ok {
				t.Logf("key %s: its %d operations are not linearizable", part[0].Input.(linInput).Key, len(part))
			}
		}
	}
	info.AddAnnotations(notes)
	path := linArtifactPath(t, "history.html")
	if dir != "" {
		path = filepath.Join(dir, "history.html")
	}
	if err := porcupine.VisualizePath(linModel, info, path); err != nil {
		t.Errorf("writing the visualization: %v", err)
		return res, ""
	}
	return res, path
}

// linArtifactsDir is where failing tests leave evidence: cluster-test/
// artifacts (git-ignored) so it outlives t.TempDir.
const linArtifactsDir = "artifacts"

// linArtifactPath returns artifacts/<test>-<time>-<name>, creating the
// directory.
func linArtifactPath(t testing.TB, name string) string {
	dir, err := filepath.Abs(linArtifactsDir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		dir = os.TempDir()
	}
	base := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return filepath.Join(dir, fmt.Sprintf("%s-%s-%s", base, time.Now().Format("150405.000"), name))
}

// linSaveLogs copies every node's log next to a failure's visualization.
func linSaveLogs(t testing.TB, c *Cluster) []string {
	var paths []string
	for _, n := range c.Nodes {
		b, err := os.ReadFile(n.logPath)
		if err != nil {
			continue
		}
		p := linArtifactPath(t, n.ID+".log")
		if os.WriteFile(p, b, 0o644) == nil {
			paths = append(paths, p)
		}
	}
	return paths
}

// ---- the checker can fail ----

func linOp(client int, key string, put bool, value string, found bool, call, ret int64) porcupine.Operation {
	in := linInput{Key: key, Put: put}
	var out linOutput
	if put {
		in.Value = value
	} else {
		out = linOutput{Found: found, Value: value}
	}
	return porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

// TestLinCheckerRejectsIllegalHistories is the handmade negative control:
// histories that are plainly not linearizable must be reported as such, and
// their legal twins must pass.
func TestLinCheckerRejectsIllegalHistories(t *testing.T) {
	cases := []struct {
		name  string
		h     []porcupine.Operation
		legal bool
	}{
		{"stale read after acknowledged write", []porcupine.Operation{
			linOp(0, "x", true, "1", false, 0, 10),
			linOp(1, "x", false, "", false, 20, 30), // not found after put(1) returned
		}, false},
		{"read concurrent with write", []porcupine.Operation{
			linOp(0, "x", true, "1", false, 0, 10),
			linOp(1, "x", false, "", false, 5, 30),
		}, true},
		{"read of a value never written", []porcupine.Operation{
			linOp(0, "x", true, "1", false, 0, 10),
			linOp(1, "x", false, "2", true, 20, 30),
		}, false},
		{"reads go back in time", []porcupine.Operation{
			linOp(0, "x", true, "1", false, 0, 10),
			linOp(0, "x", true, "2", false, 0, 100),
			linOp(1, "x", false, "2", true, 20, 30),
			linOp(2, "x", false, "1", true, 40, 50), // 2 was seen, then 1 again
		}, false},
		{"ambiguous write seen late", []porcupine.Operation{
			linOp(0, "x", true, "1", false, 0, 10),
			linOp(1, "x", true, "2", false, 15, linPending),
			linOp(2, "x", false, "1", true, 20, 30),
			linOp(2, "x", false, "2", true, 40, 50),
		}, true},
		{"ambiguous write seen, then overwritten value returns", []porcupine.Operation{
			linOp(0, "x", true, "1", false, 0, 10),
			linOp(1, "x", true, "2", false, 15, linPending),
			linOp(2, "x", false, "2", true, 40, 50),
			linOp(2, "x", false, "1", true, 60, 70),
		}, false},
		{"keys are independent", []porcupine.Operation{
			linOp(0, "x", true, "1", false, 0, 10),
			linOp(1, "y", false, "", false, 20, 30),
			linOp(1, "x", false, "1", true, 20, 30),
		}, true},
	}
	for _, tc := range cases {
		res := porcupine.CheckOperationsTimeout(linModel, tc.h, 5*time.Second)
		want := porcupine.Illegal
		if tc.legal {
			want = porcupine.Ok
		}
		if res != want {
			t.Errorf("%s: %s, want %s", tc.name, res, want)
		}
		pruned, _ := linPrune(tc.h)
		if res2 := porcupine.CheckOperationsTimeout(linModel, pruned, 5*time.Second); res2 != res {
			t.Errorf("%s: pruning changed the verdict from %s to %s", tc.name, res, res2)
		}
	}
	// The failure path writes a visualization.
	res, info := porcupine.CheckOperationsVerbose(linModel, cases[0].h, 5*time.Second)
	if res != porcupine.Illegal {
		t.Fatalf("verbose check: %s", res)
	}
	path := filepath.Join(t.TempDir(), "illegal.html")
	if err := porcupine.VisualizePath(linModel, info, path); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() < 1000 {
		t.Fatalf("visualization %s: %v %v", path, st, err)
	}
}
