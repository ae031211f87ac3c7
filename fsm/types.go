package fsm

import (
	"bufio"
	"encoding/binary"
	"fmt"
)

// Typed values. A key holds one kind of value: a string (item.value) or a
// collection (item.obj): hash, set, sorted set, list or stream. Every kind
// has a TTL, a version, a place in memory accounting, eviction, snapshots,
// backups and the digest, like strings.
//
// Collections are persistent (copy-on-write) structures: a published state
// shares them with the writer's clone, and a command that changes one
// first takes a private copy through Tx.mutable. The copy is O(1) (the
// structures copy their touched paths lazily), and it is taken at most
// once per private state: an item copied by this state (item.gen equals
// the state's gen) is changed in place by later commands of the same
// entry. An atomic unit or script runs on a state of its own with a new
// gen, so a rolled-back unit never changed what its parent holds.
//
// Typed values are a feature of level 3 (LevelTypes): their commands are
// refused, and snapshots keep format 2, until every member applies them.

// ValueType is the type of value a key holds (Kind is a reply's).
type ValueType uint8

// Kinds, as stored in snapshots (append only).
const (
	TypeString ValueType = 0
	TypeHash   ValueType = 1
	TypeSet    ValueType = 2
	TypeZSet   ValueType = 3
	TypeList   ValueType = 4
	TypeStream ValueType = 5
)

// String is the name TYPE answers.
func (k ValueType) String() string {
	switch k {
	case TypeString:
		return "string"
	case TypeHash:
		return "hash"
	case TypeSet:
		return "set"
	case TypeZSet:
		return "zset"
	case TypeList:
		return "list"
	case TypeStream:
		return "stream"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// object is a collection value. Published objects are immutable; only an
// object reached through Tx.mutable may be changed.
type object interface {
	kind() ValueType
	// length is the number of elements; Tx.save deletes a key whose
	// collection became empty, as Redis does.
	length() int
	// size is the memory accounted to the value beyond the key and
	// EntryOverhead: element bytes plus the kind's per-element overhead,
	// replicated constants that never change meaning.
	size() int64
	// clone returns a private copy in O(1) (copy-on-write).
	clone() object
	// appendTo appends a deterministic encoding (snapshots, backups, the
	// digest) that the kind's decoder reads back.
	appendTo(b []byte) []byte
}

// keepEmpty is implemented by kinds whose key outlives its last element
// (a stream keeps its last ID, as in Redis).
type keepEmpty interface{ keepEmpty() bool }

// dropsWhenEmpty says whether o, once empty, deletes its key.
func dropsWhenEmpty(o object) bool {
	k, ok := o.(keepEmpty)
	return !ok || !k.keepEmpty()
}

// decoders read each kind's encoding back (registered by each kind's file).
var decoders = map[ValueType]func([]byte) (object, error){}

func registerKind(k ValueType, decode func([]byte) (object, error)) {
	if decoders[k] != nil {
		panic("fsm: kind registered twice: " + k.String())
	}
	decoders[k] = decode
}

func decodeObject(k ValueType, b []byte) (object, error) {
	dec := decoders[k]
	if dec == nil {
		return nil, fmt.Errorf("unknown value kind %d", k)
	}
	o, err := dec(b)
	if err != nil {
		return nil, fmt.Errorf("%s value: %w", k, err)
	}
	if o.length() == 0 && dropsWhenEmpty(o) {
		return nil, fmt.Errorf("empty %s value", k)
	}
	return o, nil
}

// kind is the kind of value it holds.
func (it *item) kind() ValueType {
	if it.obj == nil {
		return TypeString
	}
	return it.obj.kind()
}

// typed returns the live item under key if it holds kind k. found is
// false for an absent (or expired) key; a key of another kind answers
// wrong = true, and the command replies replyWrongType.
func (t *Tx) typed(key []byte, k ValueType) (it *item, found, wrong bool) {
	it, found = t.lookup(key)
	if found && it.kind() != k {
		return nil, false, true
	}
	return it, found, false
}

// readTyped is typed for a command that answers a client with the value:
// it counts a hit or a miss and refreshes the LRU hint, as read does.
func (t *Tx) readTyped(key []byte, k ValueType) (it *item, found, wrong bool) {
	it, found = t.read(key)
	if found && it.kind() != k {
		return nil, false, true
	}
	return it, found, false
}

// str is typed for strings.
func (t *Tx) str(key []byte) (it *item, found, wrong bool) { return t.typed(key, TypeString) }

// mutable returns the collection of kind k under key, ready to change in
// place: the live one (copied for this state once), or, if the key is
// absent and create is set, a new empty one made by create. found says
// whether the key existed; it is nil when the key is absent and create is
// nil. After changing it.obj the command calls t.save(it) exactly once.
func (t *Tx) mutable(key []byte, k ValueType, create func() object) (it *item, found, wrong bool) {
	cur, found, wrong := t.typed(key, k)
	switch {
	case wrong:
		return nil, false, true
	case !found && create == nil:
		return nil, false, false
	case !found:
		// An expired item still in the tree is replaced by save.
		return &item{key: string(key), obj: create(), gen: t.s.gen}, false, false
	case cur.gen == t.s.gen:
		return cur, true, false
	}
	return &item{key: cur.key, obj: cur.obj.clone(), expireAt: cur.expireAt, gen: t.s.gen}, true, false
}

// save publishes a collection changed through mutable into the writer's
// state: a new version, the accounting, the change records. A collection
// left empty deletes the key. It returns the key's new version (0 when
// the key was deleted).
func (t *Tx) save(it *item) uint64 {
	if it.obj.length() == 0 && dropsWhenEmpty(it.obj) {
		if old, ok := t.s.get([]byte(it.key)); ok {
			t.s.remove(old)
			t.changed(it.key)
		}
		return 0
	}
	old, _ := t.s.tree.Get(&item{key: it.key})
	v := t.s.put(it, old, t.index, t.now)
	t.changed(it.key)
	return v
}

// putObject stores a whole new collection under key (SINTERSTORE, COPY,
// RENAME...), replacing whatever the key held; an empty collection
// deletes the key. It returns the new version (0 when deleted).
func (t *Tx) putObject(key string, o object, expireAt int64) uint64 {
	return t.save(&item{key: key, obj: o, expireAt: expireAt, gen: t.s.gen})
}

// event records a keyspace event (Redis's event name, such as "hset" or
// "lpush") for key, for keyspace notifications. The key itself is
// recorded as changed by save, put and del.
func (t *Tx) event(name, key string) {
	if t.ch != nil {
		t.ch.events = append(t.ch.events, KeyEvent{Key: key, Event: name})
	}
}

// KeyEvent is one keyspace event of an applied entry, in the order the
// commands ran.
type KeyEvent struct {
	Key   string
	Event string // Redis's event name: "set", "del", "hset", "expired"...
}

// appendItemValue appends an item's kind and value (a string's bytes or a
// collection's encoding), as snapshots of format 3 and the digest hold it.
func appendItemValue(b []byte, it *item) []byte {
	b = append(b, byte(it.kind()))
	if it.obj == nil {
		return appendBytes(b, it.value)
	}
	start := len(b)
	b = append(b, make([]byte, binary.MaxVarintLen64)...)
	b = it.obj.appendTo(b)
	// Length-prefix the encoding in place: uvarint length, then bytes.
	n := len(b) - start - binary.MaxVarintLen64
	var hdr [binary.MaxVarintLen64]byte
	h := binary.PutUvarint(hdr[:], uint64(n))
	copy(b[start:], hdr[:h])
	copy(b[start+h:], b[start+binary.MaxVarintLen64:])
	return b[:start+h+n]
}

// readItemValue reads what appendItemValue wrote into it.
func readItemValue(r *bufio.Reader, it *item) error {
	k, err := r.ReadByte()
	if err != nil {
		return err
	}
	b, err := readBytes(r)
	if err != nil {
		return err
	}
	if ValueType(k) == TypeString {
		it.value = b
		return nil
	}
	it.obj, err = decodeObject(ValueType(k), b)
	return err
}

// cardinality is HLEN, LLEN, SCARD, XLEN and ZCARD: the length of the
// collection of kind k under the key, 0 when it is absent. Like Redis's
// lookupKeyReadOrReply, it counts a keyspace hit or miss.
func cardinality(k ValueType) func(*Tx, [][]byte) Reply {
	return func(t *Tx, a [][]byte) Reply {
		it, found, wrong := t.readTyped(a[1], k)
		switch {
		case wrong:
			return replyWrongType
		case !found:
			return intReply(0)
		}
		return intReply(int64(it.obj.length()))
	}
}
