package cli

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// The default memory bound. Without --max-memory a node bounds its cache
// by what it may use: the memory limit of its cgroup (a container's
// limit; cgroup v2's memory.max or v1's memory.limit_in_bytes) or, with
// none, the machine's memory. The cache gets half of that, less what Raft
// and the stores keep outside it; the other half is headroom for the
// garbage collector (a Go heap runs up to twice its live data between
// collections unless GOMEMLIMIT makes it collect sooner), the request
// buffers of in-flight values, the page cache the log store's fsyncs
// want, and the request-id table (fsm.DedupMaxBytes at most, about 107
// MiB, outside the cache's accounted bytes: an id cannot be evicted).
// The table is not taken off the cache's share: with GOMEMLIMIT at 90%
// the live heap stays under the limit even with the table full (from a
// 256 MiB limit up), and taking it off would shrink every member's
// bound on upgrade (the leader enforces the smallest any member
// reports). GOMEMLIMIT is set to 90% of the limit (unless the environment
// sets it), so the collector works harder before the kernel's OOM killer
// would act.
const (
	autoMemoryShare = 0.5
	goMemoryShare   = 0.9
	// raftReserveBase is what Raft and the stores keep besides the
	// cache: the log cache of recent entries, bolt's or the WAL's
	// buffers, the snapshot writer, connection buffers. Four largest
	// values are added: entries in flight hold copies of values.
	raftReserveBase = 64 << 20
	// minAutoMemory is the smallest default bound: below it the node runs
	// anyway and says so.
	minAutoMemory = 16 << 20
)

// memoryLimit is the memory this process may use and where that figure
// comes from; 0 if unknown.
func memoryLimit() (int64, string) {
	machine := machineMemory()
	if l := cgroupLimit(); l > 0 && (machine == 0 || l < machine) {
		return l, "cgroup memory limit"
	}
	if machine > 0 {
		return machine, "machine memory"
	}
	return 0, ""
}

// autoMaxMemory is the default bound for a limit, and GOMEMLIMIT's value.
func autoMaxMemory(limit, maxValueSize int64) (bound, goLimit int64) {
	bound = int64(float64(limit)*autoMemoryShare) - raftReserveBase - 4*maxValueSize
	return max(bound, minAutoMemory), int64(float64(limit) * goMemoryShare)
}

// setGoMemoryLimit applies GOMEMLIMIT unless the environment set one.
func setGoMemoryLimit(limit int64) bool {
	if os.Getenv("GOMEMLIMIT") != "" || limit <= 0 {
		return false
	}
	debug.SetMemoryLimit(limit)
	return true
}

// machineMemory is MemTotal from /proc/meminfo, in bytes.
func machineMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupLimit is the memory limit of this process's cgroup, v2 or v1; 0
// if none. Inside a container the cgroup is usually mounted at the root
// of /sys/fs/cgroup; on a host, under the path /proc/self/cgroup names.
func cgroupLimit() int64 {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	return cgroupLimitFrom("/sys/fs/cgroup", string(b))
}

func cgroupLimitFrom(root, selfCgroup string) int64 {
	var candidates []string
	for _, line := range strings.Split(strings.TrimSpace(selfCgroup), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "": // v2
			candidates = append(candidates, filepath.Join(root, parts[2], "memory.max"), filepath.Join(root, "memory.max"))
		case hasController(parts[1], "memory"): // v1
			candidates = append(candidates, filepath.Join(root, "memory", parts[2], "memory.limit_in_bytes"), filepath.Join(root, "memory", "memory.limit_in_bytes"))
		}
	}
	for _, path := range candidates {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v <= 0 || v >= 1<<62 { // v1 says "no limit" with a huge number
			return 0
		}
		return v
	}
	return 0
}

func hasController(list, name string) bool {
	for _, c := range strings.Split(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}
