package fsm

import (
	"fmt"
	"strings"
	"testing"
)

func TestStreamCommands(t *testing.T) {
	f, b := listStreamFSM(t)
	ms := t0 / 1e6
	checkListStream(t, f, b, t0, []string{
		"XADD s 1-1 f v", "XADD s 1-1 f v", "XADD s 1-0 f v", "XADD s 1-* g w", "XADD s 1 f v", "XADD s 2 f v",
		"XADD s 0-0 f v", "XADD s 0 f v", "XADD t 0-* f v", "XADD s abc f v", "XADD s 3-1 f", "XADD s 3-1 f v g",
		"XADD s +6-007 f v", "XADD s 5-18446744073709551616 f v", "XRANGE s - +", "XLEN s",
		// `*`: the entry's leader time, then the sequence within the entry.
		"XADD s * a 1", "XADD s * b 2", "XADD s 5-* c 3",
		"XADD u 18446744073709551615-18446744073709551615 f v", "XADD u * f v", "XLEN u",
	}, []string{
		`"1-1"`, "(error) ERR The ID specified in XADD is equal or smaller than the target stream top item",
		"(error) ERR The ID specified in XADD is equal or smaller than the target stream top item", `"1-2"`,
		"(error) ERR The ID specified in XADD is equal or smaller than the target stream top item", `"2-0"`,
		"(error) ERR The ID specified in XADD must be greater than 0-0", "(error) ERR The ID specified in XADD must be greater than 0-0",
		`"0-1"`, "(error) ERR Invalid stream ID specified as stream command argument",
		"(error) ERR wrong number of arguments for 'xadd' command", "(error) ERR wrong number of arguments for 'xadd' command",
		`"6-7"`, "(error) ERR Invalid stream ID specified as stream command argument",
		`[["1-1" ["f" "v"]] ["1-2" ["g" "w"]] ["2-0" ["f" "v"]] ["6-7" ["f" "v"]]]`, "(integer) 4",
		fmt.Sprintf(`"%d-0"`, ms), fmt.Sprintf(`"%d-1"`, ms),
		"(error) ERR The ID specified in XADD is equal or smaller than the target stream top item",
		`"18446744073709551615-18446744073709551615"`, "(error) ERR The stream has exhausted the last possible ID, unable to add more items",
		"(integer) 1",
	})
	// A later entry from a leader whose clock is behind: the IDs still
	// grow, from the last one.
	checkListStream(t, f, b, t0-5e9, []string{"XADD s * c 3", "XREVRANGE s + - COUNT 2"}, []string{
		fmt.Sprintf(`"%d-2"`, ms),
		fmt.Sprintf(`[["%d-2" ["c" "3"]] ["%d-1" ["b" "2"]]]`, ms, ms),
	})
	checkListStream(t, f, b, t0+1e6, []string{"XADD s * d 4"}, []string{fmt.Sprintf(`"%d-0"`, ms+1)})

	f, b = listStreamFSM(t)
	checkListStream(t, f, b, t0, []string{
		"XADD s 1-1 a 1", "XADD s 2-1 b 2", "XADD s 3-1 c 3 d 4", "XADD s 5-0 e 5",
		"XRANGE s 2 3", "XRANGE s (1-1 (5", "XREVRANGE s + - COUNT 2", "XREVRANGE s (5-0 (1-1",
		"XRANGE s - + COUNT 0", "XRANGE nope - + COUNT 0", "XRANGE s - + COUNT -1", "XRANGE s - + COUNT", "XRANGE s - + FOO 1",
		"XRANGE s 5 1", "XRANGE s (- +", "XRANGE s ( +", "XRANGE s (18446744073709551615-18446744073709551615 +", "XRANGE s - (0-0",
		"XRANGE s abc +", "XRANGE s - + COUNT x", "XREVRANGE nope + -", "XLEN nope",
	}, []string{
		`"1-1"`, `"2-1"`, `"3-1"`, `"5-0"`,
		// "(5" is 5-18446744073709551615 made exclusive: 5-0 is in.
		`[["2-1" ["b" "2"]] ["3-1" ["c" "3" "d" "4"]]]`, `[["2-1" ["b" "2"]] ["3-1" ["c" "3" "d" "4"]] ["5-0" ["e" "5"]]]`,
		`[["5-0" ["e" "5"]] ["3-1" ["c" "3" "d" "4"]]]`, `[["3-1" ["c" "3" "d" "4"]] ["2-1" ["b" "2"]]]`,
		"(nil)", "[]", "(nil)", "(error) ERR syntax error", "(error) ERR syntax error",
		"[]", "(error) ERR Invalid stream ID specified as stream command argument", "(error) ERR Invalid stream ID specified as stream command argument",
		"(error) ERR invalid start ID for the interval", "(error) ERR invalid end ID for the interval",
		"(error) ERR Invalid stream ID specified as stream command argument", "(error) ERR value is not an integer or out of range", "[]", "(integer) 0",
	})
	res := execEntry(t, f, b, t0, unit(UnitPlain, "XRANGE s - + COUNT 0"))
	if k := res.Results[0].Replies[0].Kind; k != KindNullArray {
		t.Errorf("COUNT 0: kind %d, want KindNullArray", k)
	}

	// XDEL and trimming keep the last ID; an emptied stream stays.
	checkListStream(t, f, b, t0, []string{
		"XDEL s 2-1 2-1 9-9", "XDEL s 1-1 abc", "XLEN s", "XDEL s 1-1 3-1 5", "XLEN s", "EXISTS s", "TYPE s",
		"XADD s 5-0 c 3", "XADD s 5-1 c 3", "XDEL nope 1-1", "XDEL nope abc",
		"XADD s 6 a 1", "XADD s 7 a 1", "XADD s 8 a 1", "XTRIM s MAXLEN 3", "XTRIM s MAXLEN = 2", "XTRIM s MINID 8",
		"XRANGE s - +", "XTRIM s MAXLEN 0", "EXISTS s", "XLEN s", "XTRIM nope MAXLEN 0", "XTRIM s MAXLEN -1",
		"XTRIM s MAXLEN 1 LIMIT 5", "XTRIM s MINID 1 MAXLEN 1", "XTRIM s LIMIT 5", "XTRIM s MAXLEN ~ 1 LIMIT -1",
		"XTRIM s FOO 1", "XTRIM s MINID abc", "XTRIM s MAXLEN", "XTRIM s NOMKSTREAM MAXLEN 1",
	}, []string{
		"(integer) 1", "(error) ERR Invalid stream ID specified as stream command argument", "(integer) 3",
		"(integer) 3", "(integer) 0", "(integer) 1", "stream",
		"(error) ERR The ID specified in XADD is equal or smaller than the target stream top item", `"5-1"`, "(integer) 0", "(integer) 0",
		`"6-0"`, `"7-0"`, `"8-0"`, "(integer) 1", "(integer) 1", "(integer) 1",
		`[["8-0" ["a" "1"]]]`, "(integer) 1", "(integer) 1", "(integer) 0", "(integer) 0", "(error) ERR The MAXLEN argument must be >= 0.",
		"(error) ERR syntax error, LIMIT cannot be used without the special ~ option",
		"(error) ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
		"(error) ERR syntax error, LIMIT cannot be used without specifying a trimming strategy", "(error) ERR The LIMIT argument must be >= 0.",
		"(error) ERR syntax error", "(error) ERR Invalid stream ID specified as stream command argument",
		"(error) ERR wrong number of arguments for 'xtrim' command", "(error) ERR syntax error",
	})

	// XADD's options; `~` trims exactly, LIMIT caps it.
	checkListStream(t, f, b, t0, []string{
		"XADD n NOMKSTREAM * f v", "EXISTS n", "XADD n MAXLEN 0 1-1 f v", "EXISTS n", "XLEN n",
		"XADD n NOMKSTREAM 2-1 f v", "XADD n MAXLEN 2 3-1 f v", "XADD n MAXLEN = 2 4-1 f v", "XADD n MAXLEN 1 NOMKSTREAM 5-1 f v",
		"XRANGE n - +", "XADD n MINID 5-1 6-1 f v", "XRANGE n - +", "XADD n MAXLEN -1 * f v", "XADD n MAXLEN abc * f v",
		"XADD n MAXLEN 1 LIMIT 5 * f v", "XADD n MAXLEN ~ 0 LIMIT 1 7-1 f v", "XLEN n", "XADD n MAXLEN ~ 0 8-1 f v", "XLEN n",
		"XADD n MAXLEN", "XADD n MAXLEN 1 f v", "XADD n NOMKSTREAM",
		"SET str v", "XADD str * f v", "XRANGE str - +", "XLEN str", "XTRIM str MAXLEN 1", "XDEL str 1-1", "XADD str MAXLEN x * f v",
	}, []string{
		"(nil)", "(integer) 0", `"1-1"`, "(integer) 1", "(integer) 0",
		`"2-1"`, `"3-1"`, `"4-1"`, `"5-1"`,
		`[["5-1" ["f" "v"]]]`, `"6-1"`, `[["5-1" ["f" "v"]] ["6-1" ["f" "v"]]]`, "(error) ERR The MAXLEN argument must be >= 0.",
		"(error) ERR value is not an integer or out of range",
		"(error) ERR syntax error, LIMIT cannot be used without the special ~ option", `"7-1"`, "(integer) 2", `"8-1"`, "(integer) 0",
		"(error) ERR wrong number of arguments for 'xadd' command", "(error) ERR Invalid stream ID specified as stream command argument",
		"(error) ERR wrong number of arguments for 'xadd' command",
		"OK", wrongTypeText, wrongTypeText, wrongTypeText, wrongTypeText, wrongTypeText, "(error) ERR value is not an integer or out of range",
	})
}

// TestStreamEvents checks the keyspace events and that a command that
// removes nothing changes nothing (no new version, no event).
func TestStreamEvents(t *testing.T) {
	f, b := listStreamFSM(t)
	var got []string
	f.OnChange(func(c Change) {
		for _, e := range c.Events {
			got = append(got, e.Event+":"+e.Key)
		}
	})
	execEntry(t, f, b, t0, unit(UnitPlain, "XADD s 1-1 f v", "XADD s 2-1 f v", "XADD s MAXLEN 1 3-1 f v",
		"XDEL s 9-9", "XDEL s 3-1", "XTRIM s MAXLEN 5", "XADD s 4-1 f v", "XTRIM s MINID 5"))
	want := "xadd:s xadd:s xadd:s xtrim:s xdel:s xadd:s xtrim:s"
	if s := strings.Join(got, " "); s != want {
		t.Errorf("events\n got %s\nwant %s", s, want)
	}
	v1 := f.View(t0).Exec(argv("XLEN s"))
	res := execEntry(t, f, b, t0, unit(UnitPlain, "XDEL s 1-1", "XTRIM s MAXLEN 3"))
	if replies(res.Results[0].Replies) != "(integer) 0, (integer) 0" || v1.String() != "(integer) 0" {
		t.Fatalf("got %s", replies(res.Results[0].Replies))
	}
}

// TestListStreamSnapshot round-trips lists and streams (an emptied
// stream and its last ID included) through a snapshot: same digest,
// same bytes, and the restored stream still refuses old IDs.
func TestListStreamSnapshot(t *testing.T) {
	f, b := listStreamFSM(t)
	execEntry(t, f, b, t0, unit(UnitPlain,
		"RPUSH l a b c", "LPUSH l z", "RPUSH big "+strings.Repeat("x ", 3000), "EXPIRE l 100",
		"XADD s 5-1 f v g w", "XADD s 7-3 h x", "XDEL s 5-1",
		"XADD e 9-9 f v", "XDEL e 9-9", "SET str v"))
	snap := snapshotBytes(t, f)
	g := New(nil)
	if err := restore(g, snap); err != nil {
		t.Fatal(err)
	}
	d1, _ := f.Digest()
	d2, _ := g.Digest()
	if d1 != d2 {
		t.Fatal("digest differs after restore")
	}
	if f.Stats().Bytes != g.Stats().Bytes || g.Stats().Keys != 5 {
		t.Fatalf("restored stats %+v, want %+v", g.Stats(), f.Stats())
	}
	var gb logBuilder
	gb.index = b.index
	checkListStream(t, g, &gb, t0, []string{
		"LRANGE l 0 -1", "TTL l", "LLEN big", "XRANGE s - +", "EXISTS e", "XLEN e", "XADD e 9-9 f v", "XADD e 9-* f v",
		"XADD s 7-3 f v",
	}, []string{
		`["z" "a" "b" "c"]`, "(integer) 100", "(integer) 3000", `[["7-3" ["h" "x"]]]`, "(integer) 1", "(integer) 0",
		"(error) ERR The ID specified in XADD is equal or smaller than the target stream top item", `"9-10"`,
		"(error) ERR The ID specified in XADD is equal or smaller than the target stream top item",
	})
	// Corrupt encodings are refused, not half-loaded.
	for _, bad := range [][]byte{
		{},             // no count
		{2, 1, 'a'},    // two elements announced, one there
		{1, 1, 'a', 9}, // bytes after the list
		{1, 5, 'a'},    // element shorter than announced
	} {
		if _, err := decodeObject(TypeList, bad); err == nil {
			t.Errorf("list %v decoded", bad)
		}
	}
	s := newStream().(*streamObj)
	s.insert(&streamEntry{id: streamID{5, 0}, fields: []string{"f", "v"}})
	s.insert(&streamEntry{id: streamID{6, 0}, fields: []string{"f", "v"}})
	good := s.appendTo(nil)
	if _, err := decodeObject(TypeStream, good); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(good); i++ {
		if _, err := decodeObject(TypeStream, good[:i]); err == nil {
			t.Errorf("truncated stream (%d of %d bytes) decoded", i, len(good))
		}
	}
	// Entries out of order, or above the last ID, are refused.
	s.last = streamID{5, 0}
	if _, err := decodeObject(TypeStream, s.appendTo(nil)); err == nil {
		t.Error("stream with an entry above its last ID decoded")
	}
}
