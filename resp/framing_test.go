package resp

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestFramingLimits checks the second framing against limits, fed whole
// and one byte at a time (a client may split a command anywhere).
func TestFramingLimits(t *testing.T) {
	const maxArgs, maxBulk, maxCmd, maxInline = 4, 10, 40, 16
	for _, tc := range []struct {
		name, in, want string
	}{
		{"commands", "*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n", ""},
		{"inline", "PING\r\nGET k\n\r\n", ""},
		{"empty bulk", "*2\r\n$3\r\nGET\r\n$0\r\n\r\n", ""},
		{"bulk with CRLF inside", "*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\r\n\r\n", ""},
		{"incomplete", "*3\r\n$3\r\nSET\r\n$1\r", ""},
		{"bulk too long", "*2\r\n$4\r\nECHO\r\n$11\r\n", "invalid bulk length"},
		{"huge bulk", "*2\r\n$4\r\nECHO\r\n$99999999999999999999\r\n", "invalid bulk length"},
		{"negative bulk", "*1\r\n$-1\r\n", "invalid bulk length"},
		{"too many args", "*5\r\n", "invalid multibulk length"},
		{"zero args", "*0\r\n", "invalid multibulk length"},
		{"bad count", "*x\r\n", "invalid multibulk length"},
		{"count without CR", "*1\n", "invalid length header"},
		{"not a bulk", "*1\r\n:1\r\n", "expected '$', got ':'"},
		{"long header", "*1\r\n$000000000000000000000000001\r\n", "invalid length header"},
		{"inline too long", strings.Repeat("x", 17), "too big inline request"},
		{"command too big", "*4\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n", "command too big"},
		{"second command too big", "*1\r\n$4\r\nPING\r\n*4\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$10\r\n", "command too big"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var whole framing
			if got := whole.scan([]byte(tc.in), maxArgs, maxBulk, maxCmd, maxInline, nil); got != tc.want {
				t.Errorf("whole: %q, want %q", got, tc.want)
			}
			var bytewise framing
			got := ""
			for i := 0; i < len(tc.in) && got == ""; i++ {
				got = bytewise.scan([]byte(tc.in[i:i+1]), maxArgs, maxBulk, maxCmd, maxInline, nil)
			}
			if got != tc.want {
				t.Errorf("byte by byte: %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFramingStaysInStep: after many commands split at every point, the
// framing is back between commands.
func TestFramingStaysInStep(t *testing.T) {
	stream := strings.Repeat("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\nPING\r\n", 50)
	for chunk := 1; chunk < 40; chunk++ {
		var f framing
		for i := 0; i < len(stream); i += chunk {
			if msg := f.scan([]byte(stream[i:min(i+chunk, len(stream))]), 10, 100, 1000, 100, nil); msg != "" {
				t.Fatalf("chunk %d at %d: %s", chunk, i, msg)
			}
		}
		if f.state != stStart {
			t.Fatalf("chunk %d: ended in state %d", chunk, f.state)
		}
	}
}

// chunkConn returns its stream in reads of the given sizes, cycling.
type chunkConn struct {
	net.Conn
	data  []byte
	sizes []int
	i     int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(c.data), c.sizes[c.i%len(c.sizes)])
	c.i++
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// TestLimitConnHandsOverWholeCommands: whatever the client's reads, what
// redcon gets beyond the first unfinished command is whole commands, so
// redcon never holds more than one command unparsed (its buffer would
// otherwise grow with everything a client streams), and nothing is lost
// or reordered.
func TestLimitConnHandsOverWholeCommands(t *testing.T) {
	var stream strings.Builder
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&stream, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\nPING %d\r\n", len(strconv.Itoa(i)), strconv.Itoa(i), i)
	}
	big := "*2\r\n$4\r\nECHO\r\n$50000\r\n" + strings.Repeat("b", 50000) + "\r\n"
	stream.WriteString(big + "PING\r\n")
	lim := &Limits{}
	lim.setDefaults(1 << 20)
	for _, sizes := range [][]int{{1}, {7, 13}, {4096}, {16 << 10, 5}, {100000}} {
		lc := newLimitConn(&chunkConn{data: []byte(stream.String()), sizes: sizes}, nil, lim, false)
		var got []byte
		var check framing
		for i := 0; ; i++ {
			room := []int{4096, 100, 5, 64 << 10}[i%4]
			p := make([]byte, room)
			n, err := lc.Read(p)
			if err != nil {
				break
			}
			// The piece ends at a command end, unless it holds no command
			// end at all (a piece of the first unfinished command).
			ends := 0
			last := -1
			if msg := check.scan(p[:n], lim.MaxArgs, lim.MaxBulkLen, lim.MaxCommandBytes, lim.MaxInline, func(e int) { ends++; last = e }); msg != "" {
				t.Fatal(msg)
			}
			if ends > 0 && last != n {
				t.Fatalf("reads %v: a piece of %d bytes ends %d bytes into an unfinished command", sizes, n, n-last)
			}
			got = append(got, p[:n]...)
		}
		if string(got) != stream.String() {
			t.Fatalf("reads %v: redcon got %d bytes of %d, not the same", sizes, len(got), stream.Len())
		}
	}
}
