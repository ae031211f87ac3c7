//go:build race

package resp_test

// raceEnabled: the race detector slows the relaying of large values
// tenfold, past the read deadlines of the tests that move them.
const raceEnabled = true
