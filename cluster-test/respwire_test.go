package clustertest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// A raw RESP2/RESP3 client for the differential test: it sends argv as
// an array of bulk strings and reads one reply into a typed tree, so two
// servers' replies are compared as they were sent (a status "OK" is not a
// bulk "OK", a nil bulk is not a nil array), without a library's
// conversions in between.

// Reply kinds, by their RESP type byte where there is one.
const (
	kStatus   = '+'
	kError    = '-' // also RESP3's blob error '!'
	kInt      = ':'
	kBulk     = '$'
	kArray    = '*'
	kNilBulk  = 'N' // RESP2 $-1
	kNilArray = 'A' // RESP2 *-1
	kNull     = '_' // RESP3 null
	kBool     = '#'
	kDouble   = ','
	kBigNum   = '('
	kVerbatim = '='
	kMap      = '%' // Elems holds key, value, key, value...
	kSet      = '~'
	kPush     = '>'
)

type reply struct {
	Kind  byte
	Str   string // status, error, bulk, double, big number, verbatim ("txt:..."), bool ("t"/"f")
	Int   int64
	Elems []*reply
}

// String formats r on one line, close to redis-cli: OK, "bulk",
// (integer) 3, (error) ERR ..., (nil), [..].
func (r *reply) String() string {
	if r == nil {
		return "<no reply>"
	}
	switch r.Kind {
	case kStatus:
		return r.Str
	case kError:
		return "(error) " + r.Str
	case kInt:
		return "(integer) " + strconv.FormatInt(r.Int, 10)
	case kBulk:
		return strconv.Quote(r.Str)
	case kNilBulk:
		return "(nil)"
	case kNilArray:
		return "(nil array)"
	case kNull:
		return "(null)"
	case kBool:
		return "(bool) " + r.Str
	case kDouble:
		return "(double) " + r.Str
	case kBigNum:
		return "(bignum) " + r.Str
	case kVerbatim:
		return "(verbatim) " + strconv.Quote(r.Str)
	case kArray, kSet, kPush, kMap:
		open, sep := map[byte]string{kArray: "[", kSet: "~[", kPush: ">[", kMap: "{"}[r.Kind], ", "
		var b strings.Builder
		b.WriteString(open)
		for i, e := range r.Elems {
			if i > 0 {
				if r.Kind == kMap && i%2 == 1 {
					b.WriteString(": ")
				} else {
					b.WriteString(sep)
				}
			}
			b.WriteString(e.String())
		}
		if r.Kind == kMap {
			b.WriteString("}")
		} else {
			b.WriteString("]")
		}
		return b.String()
	}
	return fmt.Sprintf("(kind %q) %q", r.Kind, r.Str)
}

// equal is exact equality of kind and content, recursively.
func (r *reply) equal(o *reply) bool {
	if r.Kind != o.Kind || r.Str != o.Str || r.Int != o.Int || len(r.Elems) != len(o.Elems) {
		return false
	}
	for i := range r.Elems {
		if !r.Elems[i].equal(o.Elems[i]) {
			return false
		}
	}
	return true
}

// firstWord is an error's code: "ERR", "WRONGTYPE", "EXECABORT", ...
func (r *reply) firstWord() string {
	w, _, _ := strings.Cut(r.Str, " ")
	return w
}

// respConn is one connection.
type respConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
}

func dialResp(addr string) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &respConn{addr: addr, c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}, nil
}

func (c *respConn) Close() error { return c.c.Close() }

// do sends one command and reads its reply.
func (c *respConn) do(argv ...string) (*reply, error) {
	c.c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := writeCommand(c.w, argv); err != nil {
		return nil, err
	}
	return readReply(c.r)
}

// writeCommand sends argv as a RESP array of bulk strings.
func writeCommand(w *bufio.Writer, argv []string) error {
	fmt.Fprintf(w, "*%d\r\n", len(argv))
	for _, a := range argv {
		fmt.Fprintf(w, "$%d\r\n%s\r\n", len(a), a)
	}
	return w.Flush()
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("protocol: line without CRLF: %q", line)
	}
	return line[:len(line)-2], nil
}

func readReply(r *bufio.Reader) (*reply, error) {
	line, err := readLine(r)
	if err != nil {
		return nil, err
	}
	if line == "" {
		return nil, errors.New("protocol: empty line")
	}
	typ, rest := line[0], line[1:]
	length := func() (int, error) {
		n, err := strconv.Atoi(rest)
		if err != nil {
			return 0, fmt.Errorf("protocol: bad length in %q", line)
		}
		return n, nil
	}
	blob := func(n int) (string, error) {
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r, b); err != nil {
			return "", err
		}
		if string(b[n:]) != "\r\n" {
			return "", fmt.Errorf("protocol: blob of %d bytes without CRLF", n)
		}
		return string(b[:n]), nil
	}
	switch typ {
	case '+', '-', ',', '(':
		return &reply{Kind: typ, Str: rest}, nil
	case '#':
		if rest != "t" && rest != "f" {
			return nil, fmt.Errorf("protocol: bad boolean %q", line)
		}
		return &reply{Kind: kBool, Str: rest}, nil
	case ':':
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("protocol: bad integer %q", line)
		}
		return &reply{Kind: kInt, Int: n}, nil
	case '_':
		return &reply{Kind: kNull}, nil
	case '$', '=', '!':
		n, err := length()
		if err != nil {
			return nil, err
		}
		if n < 0 {
			if typ != '$' {
				return nil, fmt.Errorf("protocol: negative length in %q", line)
			}
			return &reply{Kind: kNilBulk}, nil
		}
		s, err := blob(n)
		if err != nil {
			return nil, err
		}
		kind := typ
		if typ == '!' {
			kind = kError
		}
		return &reply{Kind: kind, Str: s}, nil
	case '*', '~', '>', '%', '|':
		n, err := length()
		if err != nil {
			return nil, err
		}
		if n < 0 {
			if typ != '*' {
				return nil, fmt.Errorf("protocol: negative length in %q", line)
			}
			return &reply{Kind: kNilArray}, nil
		}
		count := n
		if typ == '%' || typ == '|' {
			count = 2 * n
		}
		out := &reply{Kind: typ, Elems: make([]*reply, 0, count)}
		for i := 0; i < count; i++ {
			e, err := readReply(r)
			if err != nil {
				return nil, err
			}
			out.Elems = append(out.Elems, e)
		}
		if typ == '|' { // an attribute: metadata before the reply itself
			return readReply(r)
		}
		return out, nil
	}
	return nil, fmt.Errorf("protocol: unknown reply type in %q", line)
}
