package fsm

import (
	"encoding/binary"
	"strings"
)

// Pub/sub and keyspace notifications, as far as the replicated state goes.
//
// PUBLISH is a write: it travels through the log, and its effect is a
// message recorded in the entry's change set (Change.Messages), which
// every node hands to its own subscribers after applying the entry. That
// is the only way a PUBLISH inside MULTI or a script is delivered once,
// and on every node, rather than once per replica or only where it was
// sent. The message changes no key; its reply here is 0, and the front
// answers with the subscribers of the node it was sent to, as Redis
// Cluster does.
//
// notify-keyspace-events is replicated state (state.notify), set by the
// internal command rc.notify (CONFIG SET on the Redis port), so every
// node emits the same notifications for the same entry. Notifications are
// built from the entry's keyspace events (Tx.event) by
// Change.Notifications, with the flags in force after the entry.

// LevelChanges is the feature level of PUBLISH, rc.notify and the
// snapshot section holding the notification flags.
const LevelChanges uint32 = 3

// Message is one published message of an applied entry.
type Message struct {
	Channel string
	Data    []byte
	Shard   bool // SPUBLISH: for SSUBSCRIBE subscribers only, as in Redis
}

func init() {
	register(
		&Spec{Name: "publish", Arity: 3, Flags: FlagWrite | FlagFast, Level: LevelChanges, run: cmdPublish},
		&Spec{Name: "spublish", Arity: 3, Flags: FlagWrite | FlagFast, Level: LevelChanges, run: cmdPublish},
		&Spec{Name: "rc.notify", Arity: 2, Flags: FlagInternal | FlagWrite, Level: LevelChanges, run: rcNotify,
			check: func(a [][]byte) error {
				if _, ok := ParseNotifyFlags(string(a[1])); !ok {
					return &Error{Code: ErrSyntax, Msg: msgNotifyFlags}
				}
				return nil
			}},
	)
}

// RCNotify is rc.notify's arguments: set notify-keyspace-events to flags
// (Redis's syntax, such as "KEA").
func RCNotify(flags string) [][]byte { return [][]byte{[]byte("rc.notify"), []byte(flags)} }

func cmdPublish(t *Tx, a [][]byte) Reply {
	if t.ch != nil {
		t.ch.messages = append(t.ch.messages, Message{Channel: string(a[1]), Data: a[2], Shard: eq(a[0], "spublish")})
	}
	return intReply(0)
}

const msgNotifyFlags = "ERR Invalid event class character. Use 'Ag$lshzxeKEtmdn'."

func rcNotify(t *Tx, a [][]byte) Reply {
	f, ok := ParseNotifyFlags(string(a[1]))
	if !ok {
		return cmdErr(ErrSyntax, msgNotifyFlags)
	}
	t.s.notify = f
	return replyOK
}

// Notification classes, Redis's NOTIFY_* bits.
const (
	NotifyKeyspace uint32 = 1 << 0  // K
	NotifyKeyevent uint32 = 1 << 1  // E
	NotifyGeneric  uint32 = 1 << 2  // g
	NotifyString   uint32 = 1 << 3  // $
	NotifyList     uint32 = 1 << 4  // l
	NotifySet      uint32 = 1 << 5  // s
	NotifyHash     uint32 = 1 << 6  // h
	NotifyZSet     uint32 = 1 << 7  // z
	NotifyExpired  uint32 = 1 << 8  // x
	NotifyEvicted  uint32 = 1 << 9  // e
	NotifyStream   uint32 = 1 << 10 // t
	NotifyKeyMiss  uint32 = 1 << 11 // m (never emitted: reads are not in the log)
	NotifyLoaded   uint32 = 1 << 12 // (module events; never emitted)
	NotifyModule   uint32 = 1 << 13 // d (never emitted)
	NotifyNew      uint32 = 1 << 14 // n
	// NotifyAll is A: every class but m and n, as in Redis.
	NotifyAll = NotifyGeneric | NotifyString | NotifyList | NotifySet | NotifyHash | NotifyZSet |
		NotifyExpired | NotifyEvicted | NotifyStream | NotifyModule
)

var notifyChars = []struct {
	c    byte
	flag uint32
}{
	{'g', NotifyGeneric}, {'$', NotifyString}, {'l', NotifyList}, {'s', NotifySet}, {'h', NotifyHash},
	{'z', NotifyZSet}, {'x', NotifyExpired}, {'e', NotifyEvicted}, {'t', NotifyStream}, {'d', NotifyModule},
	{'n', NotifyNew},
}

// ParseNotifyFlags parses notify-keyspace-events as Redis does.
func ParseNotifyFlags(s string) (uint32, bool) {
	var f uint32
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 'A':
			f |= NotifyAll
		case 'K':
			f |= NotifyKeyspace
		case 'E':
			f |= NotifyKeyevent
		case 'm':
			f |= NotifyKeyMiss
		default:
			found := false
			for _, nc := range notifyChars {
				if nc.c == c {
					f |= nc.flag
					found = true
				}
			}
			if !found {
				return 0, false
			}
		}
	}
	return f, true
}

// NotifyFlagsString is CONFIG GET's form of the flags, as Redis writes it.
func NotifyFlagsString(f uint32) string {
	var b strings.Builder
	if f&NotifyAll == NotifyAll {
		b.WriteByte('A') // and no 'n', as Redis writes it
	} else {
		for _, nc := range notifyChars {
			if f&nc.flag != 0 {
				b.WriteByte(nc.c)
			}
		}
	}
	if f&NotifyKeyspace != 0 {
		b.WriteByte('K')
	}
	if f&NotifyKeyevent != 0 {
		b.WriteByte('E')
	}
	if f&NotifyKeyMiss != 0 {
		b.WriteByte('m')
	}
	return b.String()
}

// NotifyFlags is the notify-keyspace-events of the viewed state.
func (v *View) NotifyFlags() uint32 { return v.t.s.notify }

// eventClass is the notification class of a keyspace event, by Redis's
// event names (the types' commands name theirs after their commands:
// hset, lpush, zadd, sadd, xadd...).
func eventClass(name string) uint32 {
	switch name {
	case "del", "expire", "persist", "rename_from", "rename_to", "move_from", "move_to", "copy_to", "restore":
		return NotifyGeneric
	case "set", "setrange", "incrby", "incrbyfloat", "append":
		return NotifyString
	case "expired":
		return NotifyExpired
	case "evicted":
		return NotifyEvicted
	case "new":
		return NotifyNew
	case "sortstore":
		return NotifyList
	}
	switch name[0] {
	case 'h':
		return NotifyHash
	case 'z':
		return NotifyZSet
	case 'x':
		return NotifyStream
	case 's':
		return NotifySet
	case 'l', 'r', 'b':
		return NotifyList
	}
	return NotifyGeneric
}

// Keyspace notification channels (database 0, the only one).
const (
	KeyspacePrefix = "__keyspace@0__:"
	KeyeventPrefix = "__keyevent@0__:"
)

// Notifications are the keyspace notification messages of the change's
// events under its Notify flags, in event order: for each event,
// __keyspace@0__:<key> carrying the event name (K), then
// __keyevent@0__:<event> carrying the key (E), as Redis sends them.
func (c *Change) Notifications() []Message {
	f := c.Notify
	if f&(NotifyKeyspace|NotifyKeyevent) == 0 || len(c.Events) == 0 {
		return nil
	}
	var out []Message
	for _, e := range c.Events {
		if e.Event == "" || f&eventClass(e.Event) == 0 {
			continue
		}
		if f&NotifyKeyspace != 0 {
			out = append(out, Message{Channel: KeyspacePrefix + e.Key, Data: []byte(e.Event)})
		}
		if f&NotifyKeyevent != 0 {
			out = append(out, Message{Channel: KeyeventPrefix + e.Event, Data: []byte(e.Key)})
		}
	}
	return out
}

// appendNotify and readNotify are the notification flags' snapshot
// section (format 3 on).
func appendNotify(b []byte, f uint32) []byte { return binary.AppendUvarint(b, uint64(f)) }
