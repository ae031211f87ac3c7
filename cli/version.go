package cli

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/node"
)

// versionJSON is `raftcache version -o json`.
type versionJSON struct {
	Version      string `json:"version"`
	Revision     string `json:"revision"`
	Modified     bool   `json:"modified"`
	GoVersion    string `json:"go_version"`
	FeatureLevel uint32 `json:"feature_level"`
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print this binary's version, VCS revision and feature level",
		Description: `The module version and VCS revision are the ones Go recorded when it built
the binary ("(devel)" for a build of a checkout); the feature level is the
highest one the binary applies. Each member's version is in raftcache
status, GET /v1/cluster, INFO server and the raftcache_build_info metric.`,
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			return printVersion(c)
		},
	}
}

func printVersion(c *cli.Context) error {
	b := node.BuildInfo()
	v := versionJSON{Version: b.Version, Revision: b.Revision, Modified: b.Modified, GoVersion: b.GoVersion, FeatureLevel: b.FeatureLevel}
	return emit(c, result{
		json: v,
		text: func(w io.Writer) error {
			rev := v.Revision
			if rev == "" {
				rev = "unknown"
			} else if v.Modified {
				rev += " (modified)"
			}
			_, err := fmt.Fprintf(w, "raftcache %s\nrevision: %s\nfeature level: %d\ngo: %s\n", v.Version, rev, v.FeatureLevel, v.GoVersion)
			return err
		},
		table: func() ([]string, [][]string) {
			return []string{"VERSION", "REVISION", "FEATURE LEVEL", "GO"}, [][]string{{v.Version, v.Revision, fmt.Sprint(v.FeatureLevel), v.GoVersion}}
		},
	})
}
