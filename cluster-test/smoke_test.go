package clustertest

import "testing"

func TestSmoke(t *testing.T) {
	c := NewCluster(t, Options{})
	l := c.WaitForLeader()
	idx := c.Put(c.Followers(l)[0], "a", "1")
	for _, n := range c.Nodes {
		c.WaitForIndex(n, idx)
	}
	c.WaitConverged()
}
