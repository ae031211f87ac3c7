package resp

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/redcon"

	"github.com/raftcache/raftcache/internal/fuzznode"
)

// FuzzCommands feeds arbitrary bytes to the Redis front as a client's
// stream: the framing limits, redcon's parser, then every command against
// a real node. It must never panic, and must answer each command it runs
// with exactly one well-formed reply (RESP2, or RESP3 after HELLO 3).
func FuzzCommands(f *testing.F) {
	for _, seed := range []string{
		"PING\r\n",
		"*1\r\n$4\r\nPING\r\n",
		"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
		"SET k v EX 10 NX GET\r\nGET k\r\nTTL k\r\nPTTL k\r\nPERSIST k\r\n",
		"SET k v PXAT 1 KEEPTTL\r\nSET k v XX\r\nGETDEL k\r\nGETSET k 1\r\n",
		"INCR c\r\nINCRBY c -5\r\nDECRBY c 9223372036854775807\r\nDECR c\r\nINCR k\r\n",
		"MSET a 1 b 2\r\nMSETNX a 1 c 3\r\nMGET a b c\r\nDEL a b\r\nUNLINK c\r\nEXISTS a b c\r\n",
		"EXPIRE k 10 NX\r\nPEXPIRE k 100 GT\r\nEXPIREAT k 1 LT\r\nPEXPIREAT k 99999999999999\r\nTYPE k\r\nSTRLEN k\r\n",
		"MULTI\r\nSET a 1\r\nINCR a\r\nGET a\r\nEXEC\r\nMULTI\r\nBADCMD\r\nEXEC\r\nDISCARD\r\n",
		"WATCH a\r\nUNWATCH\r\nMULTI\r\nMULTI\r\nDISCARD\r\n",
		"HELLO 3\r\nGET nothing\r\nHGETALL x\r\nCLIENT INFO\r\nHELLO 2 SETNAME x\r\n",
		"KEYS *\r\nSCAN 0 MATCH a* COUNT 10\r\nSCAN 123456\r\nDBSIZE\r\nKEYS [a-\r\n",
		"INFO\r\nINFO memory stats\r\nCOMMAND\r\nCOMMAND COUNT\r\nCOMMAND INFO get set\r\nCOMMAND DOCS\r\n",
		"SELECT 0\r\nSELECT 1\r\nREADONLY\r\nGET k\r\nREADWRITE\r\nCONFIG GET maxmemory\r\nTIME\r\n",
		"AUTH x\r\nAUTH a b c\r\nEVAL \"return 1\" 0\r\nRESET\r\nECHO hi\r\nQUIT\r\nPING\r\n",
		"SETEX k 0 v\r\nPSETEX k -1 v\r\nSETNX k v\r\nSET k\r\nSET k v EX\r\nSET k v EX 1 PX 1\r\n",
		"FLUSHDB ASYNC\r\nFLUSHALL\r\nDBSIZE\r\n",
		"CLIENT SETNAME a\r\nCLIENT GETNAME\r\nCLIENT ID\r\nCLIENT LIST\r\nCLIENT SETINFO lib-name x\r\n",
		"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n*1\r\n$-1\r\n",
		"\"unbalanced\r\nSET 'a b' \"c\\x41\"\r\n",
		"PUBLISH a b\r\nPUBSUB NUMSUB a\r\nPUBSUB CHANNELS\r\nCLIENT TRACKING ON\r\nGET k\r\nCLIENT TRACKINGINFO\r\nCONFIG SET notify-keyspace-events KEA\r\n",
	} {
		f.Add([]byte(seed))
	}
	s := New(fuzznode.Get(f), Config{Timeout: 5 * time.Second})
	lim := s.cfg.Limits
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr framing
		if fr.scan(data, lim.MaxArgs, lim.MaxBulkLen, lim.MaxCommandBytes, lim.MaxInline, nil) != "" {
			return // the connection would be closed before redcon sees it
		}
		rd := redcon.NewReader(bytes.NewReader(data))
		var cmds []redcon.Command
		for len(cmds) < 64 {
			batch, err := rd.ReadCommands()
			if err != nil {
				break
			}
			cmds = append(cmds, batch...)
		}
		if len(cmds) == 0 {
			return
		}
		for _, c := range cmds {
			if pubsubCmds[strings.ToLower(string(c.Args[0]))] {
				return // one reply per channel: not one per command
			}
		}
		cl := &client{id: 1, addr: "fuzz", created: time.Now(), w: writer{proto: 2}, authed: true, sub: s.node.Hub().NewSub(1, 0)}
		defer cl.sub.Close()
		s.process(cl, cmds)
		want := len(cmds)
		for i, c := range cmds {
			if bytes.EqualFold(c.Args[0], []byte("quit")) {
				want = i + 1
				break
			}
		}
		if got, err := countReplies(cl.w.b); err != nil || got != want {
			t.Fatalf("%d commands %q: %d replies, %v:\n%q", want, data, got, err, cl.w.b)
		}
	})
}

// countReplies counts the whole replies in b and fails on anything that
// is not a well-formed RESP2 or RESP3 value.
func countReplies(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		rest, err := skipValue(b)
		if err != nil {
			return n, err
		}
		b = rest
		n++
	}
	return n, nil
}

type replyErr string

func (e replyErr) Error() string { return string(e) }

func skipValue(b []byte) ([]byte, error) {
	eol := bytes.Index(b, []byte("\r\n"))
	if len(b) == 0 || eol < 0 {
		return nil, replyErr("truncated reply")
	}
	line, rest := b[1:eol], b[eol+2:]
	if bytes.ContainsAny(line, "\r\n") {
		return nil, replyErr("CR or LF inside a line")
	}
	num := func() (int, error) {
		v, err := strconv.Atoi(string(line))
		if err != nil || v < -1 {
			return 0, replyErr("bad length " + strconv.Quote(string(line)))
		}
		return v, nil
	}
	switch b[0] {
	case '+', '-', '_', ',', '#', '(':
		return rest, nil
	case ':':
		if _, err := strconv.ParseInt(string(line), 10, 64); err != nil {
			return nil, replyErr("bad integer")
		}
		return rest, nil
	case '$', '=':
		n, err := num()
		if err != nil || n < 0 {
			return rest, err
		}
		if len(rest) < n+2 || string(rest[n:n+2]) != "\r\n" {
			return nil, replyErr("bad bulk")
		}
		return rest[n+2:], nil
	case '*', '~', '>', '%', '|':
		n, err := num()
		if err != nil {
			return nil, err
		}
		if b[0] == '%' || b[0] == '|' {
			n *= 2
		}
		for i := 0; i < n; i++ {
			if rest, err = skipValue(rest); err != nil {
				return nil, err
			}
		}
		return rest, nil
	}
	return nil, replyErr("unknown type " + strconv.Quote(string(b[:1])))
}
