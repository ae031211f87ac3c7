package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupLimit reads the memory limit of cgroup v2 and v1 layouts as
// containers and hosts present them, and "no limit" in both.
func TestCgroupLimit(t *testing.T) {
	write := func(root, rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, file, content, self string
		want                      int64
	}{
		{"v2 in a container", "memory.max", "1073741824\n", "0::/\n", 1 << 30},
		{"v2 on a host", "system.slice/raftcache.service/memory.max", "536870912\n", "0::/system.slice/raftcache.service\n", 512 << 20},
		{"v2 unlimited", "memory.max", "max\n", "0::/\n", 0},
		{"v1 in a container", "memory/memory.limit_in_bytes", "268435456\n", "4:memory:/kubepods/pod1/abc\n3:cpu,cpuacct:/x\n", 256 << 20},
		{"v1 unlimited", "memory/memory.limit_in_bytes", "9223372036854771712\n", "9:memory:/\n", 0},
		{"v1 joint controllers", "memory/memory.limit_in_bytes", "134217728\n", "5:cpuset,memory:/\n", 128 << 20},
	}
	for _, c := range cases {
		root := t.TempDir()
		write(root, c.file, c.content)
		if got := cgroupLimitFrom(root, c.self); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	bound, goLimit := autoMaxMemory(1<<30, 4<<20)
	if want := int64(512<<20 - 64<<20 - 16<<20); bound != want || goLimit != 966367641 {
		t.Errorf("1 GiB limit: bound %d (want %d), GOMEMLIMIT %d", bound, want, goLimit)
	}
	if bound, _ := autoMaxMemory(64<<20, 4<<20); bound != minAutoMemory {
		t.Errorf("64 MiB limit: bound %d, want the floor %d", bound, minAutoMemory)
	}
}
