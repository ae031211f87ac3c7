package node

import (
	"runtime/debug"
	"sync"

	"github.com/raftcache/raftcache/fsm"
)

// Build describes the running binary: what `raftcache version`, GET
// /v1/node, GET /v1/cluster, INFO server and the raftcache_build_info
// metric report. Version and revision are read from the module and VCS
// stamps Go records in the binary (runtime/debug.ReadBuildInfo), so a
// build needs no -ldflags; a binary built outside a VCS checkout reports
// "(devel)" and no revision.
type Build struct {
	Version   string // module version, "(devel)" for a build of a checkout
	Revision  string // VCS revision (commit), "" if not recorded
	Modified  bool   // the checkout had uncommitted changes
	GoVersion string
	// FeatureLevel is the highest feature level the binary applies.
	FeatureLevel uint32
}

// Set with -ldflags "-X github.com/raftcache/raftcache/node.buildVersion=v1.2.3
// -X github.com/raftcache/raftcache/node.buildRevision=<commit>" to stamp a
// binary built without VCS information (GOFLAGS=-buildvcs=false, a source
// tarball, a container build without .git); they win over ReadBuildInfo.
var buildVersion, buildRevision string

var (
	buildOnce sync.Once
	build     Build
)

// BuildInfo returns this binary's Build.
func BuildInfo() Build {
	buildOnce.Do(func() {
		build = Build{Version: "(devel)", FeatureLevel: fsm.FeatureLevel}
		defer func() {
			if buildVersion != "" {
				build.Version = buildVersion
			}
			if buildRevision != "" {
				build.Revision, build.Modified = buildRevision, false
			}
		}()
		bi, ok := debug.ReadBuildInfo()
		if !ok {
			return
		}
		build.GoVersion = bi.GoVersion
		if v := bi.Main.Version; v != "" {
			build.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				build.Revision = s.Value
			case "vcs.modified":
				build.Modified = s.Value == "true"
			}
		}
	})
	return build
}

// String is the one-line form: version, short revision, level.
func (b Build) String() string {
	s := b.Version
	if r := b.ShortRevision(); r != "" {
		s += " (" + r + ")"
	}
	return s
}

// ShortRevision is the revision's first 12 characters, "+dirty" when the
// checkout was modified.
func (b Build) ShortRevision() string {
	r := b.Revision
	if len(r) > 12 {
		r = r[:12]
	}
	if r != "" && b.Modified {
		r += "+dirty"
	}
	return r
}
