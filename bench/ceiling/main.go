// Command ceiling is a Redis-protocol server that does nothing but answer:
// GET with a fixed 100-byte value, PING with +PONG, every other command
// with +OK. It holds no state and runs no Raft. bench/compare-redis.sh
// runs it (targets redcon-bare and gnet-bare) under the same
// redis-benchmark load as redis-server and raftcache, to measure what a Go
// server on a given network model can reach on this machine at all:
//
//   - redcon: tidwall/redcon, the library raftcache's Redis front is built
//     on: a goroutine per connection, blocking reads and writes.
//   - gnet: panjf2000/gnet, event loops over epoll, as redis-server
//     itself works: a ready connection is read, answered and written
//     without a goroutine of its own.
//
// It is its own module so that the project's module does not depend on
// gnet for a measurement. Its go.mod requires the redcon version the
// project's go.mod does: keep the two equal, or redcon-bare stops being
// the front's ceiling.
package main

import (
	"bytes"
	"flag"
	"log"
	"strconv"

	"github.com/panjf2000/gnet/v2"
	"github.com/tidwall/redcon"
)

var value = bytes.Repeat([]byte("x"), 100)

func main() {
	kind := flag.String("kind", "redcon", "redcon or gnet")
	addr := flag.String("addr", "127.0.0.1:16395", "listen address")
	flag.Parse()
	switch *kind {
	case "redcon":
		log.Fatal(redcon.ListenAndServe(*addr, func(conn redcon.Conn, cmd redcon.Command) {
			switch {
			case isGet(cmd.Args[0]):
				conn.WriteBulk(value)
			case isPing(cmd.Args[0]):
				conn.WriteString("PONG")
			default:
				conn.WriteString("OK")
			}
		}, nil, nil))
	case "gnet":
		log.Fatal(gnet.Run(&loop{}, "tcp://"+*addr, gnet.WithMulticore(true), gnet.WithLogLevel(4)))
	default:
		log.Fatalf("-kind %q: redcon or gnet", *kind)
	}
}

func isGet(name []byte) bool  { return bytes.EqualFold(name, []byte("get")) }
func isPing(name []byte) bool { return bytes.EqualFold(name, []byte("ping")) }

// loop answers every complete RESP command in a connection's inbound
// buffer with one write, and leaves an incomplete one for the next event.
type loop struct {
	gnet.BuiltinEventEngine
}

var getReply = append(append([]byte("$100\r\n"), value...), "\r\n"...)

func (l *loop) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Peek(-1)
	var out []byte
	used := 0
	for used < len(buf) {
		name, n, ok := parseCommand(buf[used:])
		if !ok {
			break
		}
		used += n
		switch {
		case isGet(name):
			out = append(out, getReply...)
		case isPing(name):
			out = append(out, "+PONG\r\n"...)
		default:
			out = append(out, "+OK\r\n"...)
		}
	}
	if n, err := c.Discard(used); err != nil || n != used {
		return gnet.Close
	}
	if len(out) > 0 {
		if _, err := c.Write(out); err != nil {
			return gnet.Close
		}
	}
	return gnet.None
}

// parseCommand reads one RESP array of bulk strings (what redis-benchmark
// and redis-cli send) and returns its first element and its length; ok is
// false if the buffer does not hold a whole command yet.
func parseCommand(b []byte) (name []byte, n int, ok bool) {
	line := func() (int, bool) {
		i := bytes.Index(b[n:], []byte("\r\n"))
		if i < 1 {
			return 0, false
		}
		v, err := strconv.Atoi(string(b[n+1 : n+i]))
		n += i + 2
		return v, err == nil
	}
	if len(b) == 0 || b[0] != '*' {
		return nil, 0, false
	}
	args, ok := line()
	if !ok {
		return nil, 0, false
	}
	for a := 0; a < args; a++ {
		if n >= len(b) || b[n] != '$' {
			return nil, 0, false
		}
		size, ok := line()
		if !ok || n+size+2 > len(b) {
			return nil, 0, false
		}
		if a == 0 {
			name = b[n : n+size]
		}
		n += size + 2
	}
	return name, n, true
}
