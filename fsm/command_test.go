package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// commandCases has one or more commands of every op, with edge values:
// empty and binary keys, negative and extreme integers.
func commandCases() map[string]Command {
	return map[string]Command{
		"set": set("k", "v", t0, 0),
		"exec": {Op: OpExec, Now: t0, Limits: Limits{MaxValueSize: 1 << 20}, Units: []Unit{
			{Cmds: [][][]byte{{[]byte("SET"), []byte("k"), []byte("v")}}},
			{ReqID: []byte("r"), Mode: UnitAtomic, Resend: true, Cmds: [][][]byte{{[]byte("rc.set"), []byte("k"), {0, 0xff}}, {[]byte("GET"), []byte("k")}}},
		}},
		"set-ttl":           set("k", "v", t0, t0+int64(5e9)),
		"set-empty":         {Op: OpSet, Now: 0},
		"set-binary":        {Op: OpSet, Now: -1, Key: []byte{0, 0xff, '/', 0x80}, Value: bytes.Repeat([]byte{0}, 300), ExpireAt: math.MinInt64},
		"set-cas":           {Op: OpSet, Now: t0, Key: []byte("k"), Value: []byte("v"), Cond: CondVersion, Version: math.MaxUint64, Flags: FlagKeepTTL | FlagReturnPrev},
		"set-reqid":         {Op: OpSet, Now: t0, Key: []byte("k"), Value: []byte("v"), ReqID: []byte("client-1/42")},
		"delete-reqid":      {Op: OpDelete, Now: t0, Key: []byte("k"), ReqID: []byte{0, 0xff}},
		"set-absent":        {Op: OpSet, Now: t0, Key: []byte("k"), Cond: CondAbsent, Flags: 0xff},
		"delete":            del("k", t0),
		"delete-exists":     {Op: OpDelete, Now: math.MaxInt64, Key: []byte("k"), Cond: CondExists},
		"delete-version":    {Op: OpDelete, Now: t0, Key: []byte("k"), Cond: CondVersion, Version: 7},
		"set-member":        {Op: OpSetMember, Now: t0, MemberID: "node-1", HTTPAddr: "127.0.0.1:8080", RESPAddr: "127.0.0.1:6379"},
		"set-member-zero":   {Op: OpSetMember},
		"remove-member":     {Op: OpRemoveMember, Now: t0, MemberID: "node-1"},
		"cluster-level":     {Op: OpClusterLevel, Now: t0, Level: 2},
		"cluster-level-max": {Op: OpClusterLevel, Level: math.MaxUint32},
		"member": {Op: OpMember, Now: t0, MemberID: "node-1", Incarnation: "5f2c9e",
			Addrs: map[string]string{AddrHTTP: "127.0.0.1:8080", AddrRedis: "127.0.0.1:6379", "grpc": "[::1]:9"}, Level: 2},
		"member-zero":    {Op: OpMember},
		"incr":           {Op: OpIncr, Now: t0, Key: []byte("ctr"), By: math.MinInt64, ExpireAt: t0 + 1},
		"touch":          {Op: OpTouch, Now: t0, Key: []byte("k"), ExpireAt: 0},
		"expire":         {Op: OpExpire, Now: t0, Keys: [][]byte{[]byte("a"), {}, []byte("c")}},
		"expire-none":    {Op: OpExpire, Now: t0},
		"evict":          {Op: OpEvict, Now: t0, Keys: [][]byte{[]byte("a"), []byte("b")}, Versions: []uint64{1, math.MaxUint64}},
		"delete-prefix":  {Op: OpDeletePrefix, Now: t0, Key: []byte("user/")},
		"delete-chunk":   {Op: OpDeletePrefixChunk, Now: t0, Key: []byte("user/"), Limit: MaxBatch},
		"delete-chunk-1": {Op: OpDeletePrefixChunk, Now: t0, Key: []byte{0xff}, Limit: 1},
		"batch": {Op: OpBatch, Now: t0, Atomic: true, Cmds: []*Command{
			{Op: OpSet, Now: t0, Key: []byte("a"), Value: []byte("1"), Cond: CondAbsent},
			{Op: OpDelete, Now: t0, Key: []byte("b"), Cond: CondVersion, Version: 3},
			{Op: OpIncr, Now: t0, Key: []byte("c"), By: -2},
			{Op: OpTouch, Now: t0, Key: []byte("d"), ExpireAt: t0 + 9},
		}},
		"batch-empty": {Op: OpBatch, Now: t0},
	}
}

// equalCommand compares every field of two commands, present and future,
// treating nil and empty slices as equal (the encoding does not tell them
// apart).
func equalCommand(a, b *Command) bool {
	return reflect.DeepEqual(normalized(a), normalized(b))
}

func normalized(c *Command) *Command {
	n := *c
	v := reflect.ValueOf(&n).Elem()
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		if f.Kind() != reflect.Slice {
			continue
		}
		if f.Len() == 0 {
			f.Set(reflect.Zero(f.Type()))
			continue
		}
		switch s := f.Addr().Interface().(type) {
		case *[][]byte:
			out := make([][]byte, len(*s))
			for j, b := range *s {
				if len(b) > 0 {
					out[j] = b
				}
			}
			*s = out
		case *[]*Command:
			out := make([]*Command, len(*s))
			for j, sub := range *s {
				out[j] = normalized(sub)
			}
			*s = out
		}
	}
	return &n
}

func TestCommandRoundTrip(t *testing.T) {
	covered := map[Op]bool{}
	for name, c := range commandCases() {
		covered[c.Op] = true
		enc := c.Encode(nil)
		got, err := Decode(enc)
		if err != nil {
			t.Errorf("%s: Decode(Encode(%+v)): %v", name, c, err)
			continue
		}
		if !equalCommand(&c, &got) {
			t.Errorf("%s: round trip changed the command:\n got %+v\nwant %+v", name, got, c)
		}
		// Encode appends: a prefix already in dst is kept.
		if withPrefix := c.Encode([]byte("xy")); !bytes.Equal(withPrefix, append([]byte("xy"), enc...)) {
			t.Errorf("%s: Encode does not append to dst", name)
		}
	}
	// Every op the package names must have a case above, so a new op
	// cannot go without a round-trip test.
	for o := 0; o < 256; o++ {
		if op := Op(o); !strings.HasPrefix(op.String(), "op(") && !covered[op] {
			t.Errorf("op %v (%d) has no round-trip case", op, o)
		}
	}
}

// wantBad fails unless Decode rejects b with ErrBadCommand (and does not panic).
func wantBad(t *testing.T, what string, b []byte) {
	t.Helper()
	c, err := Decode(b)
	if !errors.Is(err, ErrBadCommand) {
		t.Errorf("%s: Decode(%q) = %+v, %v; want ErrBadCommand", what, b, c, err)
	}
}

func TestDecodeRejectsTruncated(t *testing.T) {
	wantBad(t, "nil", nil)
	wantBad(t, "empty", []byte{})
	for name, c := range commandCases() {
		enc := c.Encode(nil)
		for n := 0; n < len(enc); n++ {
			wantBad(t, name+" truncated", enc[:n:n])
		}
	}
}

func TestDecodeRejectsTrailingBytes(t *testing.T) {
	for name, c := range commandCases() {
		enc := c.Encode(nil)
		wantBad(t, name+" + 0x00", append(enc, 0))
		wantBad(t, name+" twice", append(enc, enc...))
	}
}

func TestDecodeRejectsUnknownFormat(t *testing.T) {
	for _, f := range []byte{0, 2, 0x7f, 0xff} {
		c := set("k", "v", t0, 0)
		enc := c.Encode(nil)
		enc[0] = f
		wantBad(t, "format", enc)
		wantBad(t, "format only", []byte{f})
	}
}

func TestDecodeRejectsUnknownOp(t *testing.T) {
	c := set("k", "v", t0, 0)
	body := c.Encode(nil)
	for o := 0; o < 256; o++ {
		if !strings.HasPrefix(Op(o).String(), "op(") {
			continue
		}
		enc := append([]byte(nil), body...)
		enc[1] = byte(o)
		wantBad(t, Op(o).String()+" with a set body", enc)
		wantBad(t, Op(o).String()+" bare", []byte{1, byte(o), 0})
		wantBad(t, Op(o).String()+" no now", []byte{1, byte(o)})
	}
}

func TestDecodeRejectsBadFields(t *testing.T) {
	// A length prefix far beyond the input must fail without allocating it.
	wantBad(t, "huge key length", []byte{1, byte(OpSet), 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	wantBad(t, "length past end", []byte{1, byte(OpDelete), 0, 5, 'a', 'b'})
	wantBad(t, "varint overflow", append([]byte{1, byte(OpSet)}, bytes.Repeat([]byte{0xff}, 11)...))

	bad := set("k", "v", t0, 0)
	bad.Cond = 9
	wantBad(t, "unknown condition", bad.Encode(nil))

	nested := Command{Op: OpBatch, Now: t0, Cmds: []*Command{{Op: OpBatch}}}
	wantBad(t, "nested batch", nested.Encode(nil))

	inBatch := Command{Op: OpBatch, Now: t0, Cmds: []*Command{{Op: Op(200)}}}
	wantBad(t, "unknown op in batch", inBatch.Encode(nil))

	tooMany := Command{Op: OpExpire, Now: t0, Keys: make([][]byte, MaxBatch+1)}
	wantBad(t, "expire over MaxBatch", tooMany.Encode(nil))
	wantBad(t, "delete-prefix-chunk limit 0", (&Command{Op: OpDeletePrefixChunk, Key: []byte("p")}).Encode(nil))
	wantBad(t, "delete-prefix-chunk over MaxBatch", (&Command{Op: OpDeletePrefixChunk, Key: []byte("p"), Limit: MaxBatch + 1}).Encode(nil))
	wantBad(t, "cluster level 0", (&Command{Op: OpClusterLevel}).Encode(nil))
	wantBad(t, "cluster level over 32 bits", binary.AppendUvarint([]byte{1, byte(OpClusterLevel), 0, 0}, math.MaxUint32+1))
	manyAddrs := Command{Op: OpMember, MemberID: "m", Addrs: map[string]string{}}
	for i := 0; i <= MaxMemberAddrs; i++ {
		manyAddrs.Addrs[strconv.Itoa(i)] = "h:1"
	}
	wantBad(t, "member over MaxMemberAddrs", manyAddrs.Encode(nil))
	twice := []byte{1, byte(OpMember), 0, 0, 1, 'm', 0, 2, 2, 1, 'a', 1, 'x', 1, 'a', 1, 'y'}
	wantBad(t, "member address twice", twice)
	distinct := bytes.Clone(twice)
	distinct[len(distinct)-3] = 'b'
	if c, err := Decode(distinct); err != nil || len(c.Addrs) != 2 {
		t.Errorf("control: the same member with distinct address names: %+v, %v", c, err)
	}
	ok := Command{Op: OpExpire, Now: t0, Keys: make([][]byte, MaxBatch)}
	if _, err := Decode(ok.Encode(nil)); err != nil {
		t.Errorf("expire with MaxBatch keys: %v", err)
	}
}

// checkDecode is the fuzz property: Decode never panics, fails only with
// ErrBadCommand, leaves its input alone, and whatever it accepts survives
// Encode and Decode unchanged.
func checkDecode(t *testing.T, data []byte) {
	orig := append([]byte(nil), data...)
	c, err := Decode(data)
	if !bytes.Equal(data, orig) {
		t.Fatalf("Decode modified its input")
	}
	if err != nil {
		if !errors.Is(err, ErrBadCommand) {
			t.Fatalf("Decode(%q): error %v does not wrap ErrBadCommand", data, err)
		}
		return
	}
	enc := c.Encode(nil)
	again, err := Decode(enc)
	if err != nil {
		t.Fatalf("Decode(%q) = %+v, but its re-encoding %q does not decode: %v", data, c, enc, err)
	}
	if !equalCommand(&c, &again) {
		t.Fatalf("re-encoding changed the command:\nfirst  %+v\nsecond %+v", c, again)
	}
	if enc2 := again.Encode(nil); !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding is not stable: %q then %q", enc, enc2)
	}
}

func FuzzDecode(f *testing.F) {
	// testdata/fuzz/FuzzDecode holds the committed corpus; add every case
	// of the round-trip table too.
	for _, c := range commandCases() {
		f.Add(c.Encode(nil))
	}
	f.Fuzz(checkDecode)
}

// TestDecodeRandomInputs runs the fuzz property on random and mutated
// inputs in every ordinary test run.
func TestDecodeRandomInputs(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	var seeds [][]byte
	for _, c := range commandCases() {
		seeds = append(seeds, c.Encode(nil))
	}
	accepted := 0
	for i := 0; i < 20000; i++ {
		var b []byte
		if i%2 == 0 {
			b = make([]byte, rng.Intn(24))
			rng.Read(b)
			if len(b) > 0 {
				b[0] = formatV1
			}
		} else {
			b = append([]byte(nil), seeds[rng.Intn(len(seeds))]...)
			for j := rng.Intn(3) + 1; j > 0 && len(b) > 0; j-- {
				b[rng.Intn(len(b))] = byte(rng.Intn(256))
			}
		}
		if _, err := Decode(b); err == nil {
			accepted++
		}
		checkDecode(t, b)
	}
	if accepted == 0 {
		t.Fatalf("no random input decoded: the property was never exercised past the error path")
	}
}
