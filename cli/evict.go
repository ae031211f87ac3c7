package cli

import (
	"github.com/urfave/cli/v2"

	"github.com/raftcache/raftcache/fsm"
)

// evictionFlags are the node's eviction settings (docs/api.md, "Memory
// and eviction").
func evictionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "maxmemory-policy", EnvVars: []string{"RAFTCACHE_MAXMEMORY_POLICY"}, Value: "noeviction",
			Usage: "what happens above --max-memory, with Redis's names: noeviction (writes that grow memory get OOM; " +
				"no queue or job state is ever evicted silently), allkeys-lru (a pure cache), volatile-lru, volatile-ttl, allkeys-random, volatile-random"},
	}
}

// evictionPolicy reads --maxmemory-policy.
func evictionPolicy(c *cli.Context) (fsm.EvictPolicy, error) {
	p, err := fsm.ParseEvictPolicy(c.String("maxmemory-policy"))
	if err != nil {
		return 0, usagef("--maxmemory-policy: %v", err)
	}
	return p, nil
}
