package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/btree"
)

// Request deduplication. A client that retries a write whose outcome it
// does not know (leader crash, timeout) sends the same request id; if the
// first attempt was applied, the state machine answers with the stored
// result instead of applying it again, so an increment is never counted
// twice. Ids are remembered for DedupWindow of leader time, and at most
// DedupMax of them (oldest forgotten first): both limits are decided from
// the log alone, so every replica forgets the same ids at the same index.
//
// The replies kept with them are bounded too (cluster level 4 on,
// LevelReplyBudget): a pop's or a script's reply can be as large as a
// value, and DedupMax of them could hold gigabytes outside the memory
// limit. Past DedupMaxReplyBytes the oldest kept replies are dropped and
// their ids kept, so a late retry of such a request is answered that it
// was applied but its reply is gone (as after a restore from a snapshot
// of the first format), and is never applied twice. Level 4 counted an
// error reply at a fixed 32 bytes, but a script's error text can be as
// long as a value; from level 5 (LevelStoredBudget) error texts count
// too, and a dropped failure keeps only errReplyDropped.
const (
	DedupWindow        = 5 * 60 * 1e9 // ns of leader time
	DedupMax           = 200_000
	DedupMaxReplyBytes = 64 << 20
	// ResendHorizon (below level 5) bounds how long after its first
	// attempt a unit may be sent again (Unit.Resend) and still be judged
	// by its id: a follower resends for at most its command timeout (10 s
	// by default), and leaders' clocks differ a little. From level 5 a
	// resend is judged by the log instead (Unit.After, dedupTable.forgot).
	ResendHorizon = 60 * 1e9 // ns of leader time

	// dedupEntryOverhead is what an id costs in memory besides its bytes
	// and its stored result: the entry, its slots in two btrees, and the
	// allocator's rounding (measured: 166 bytes an id for relayed SETs,
	// a 26-byte id and a 16-byte result).
	dedupEntryOverhead = 128
	// DedupMaxBytes is the most memory the table holds from cluster level
	// 5 (LevelStoredBudget) on, about 107 MiB: DedupMax ids of MaxReqID
	// bytes (and a tag from level 6: TagRequestID) with small results,
	// plus the kept replies and error texts.
	// It is outside the cache's accounted bytes (--max-memory bounds keys
	// and values; an id cannot be evicted to make room for them): it
	// lives in the headroom the default memory bound leaves (cli).
	DedupMaxBytes = DedupMax*(dedupEntryOverhead+MaxReqID+1+tagLen+16) + DedupMaxReplyBytes
)

// ErrResendForgotten (result): a unit sent again under its request id
// found the id unknown while ids as young as its first attempt may have
// been forgotten (dedupTable.mayHaveForgotten): the first attempt may
// have been applied and its id evicted, so the unit was not applied
// again. Its outcome is unknown.
var ErrResendForgotten = errors.New("write outcome unknown: the request id of this retry may have been forgotten (more request ids than the table holds); read before retrying")

// ErrRequestMismatch (result, cluster level 6 on): a tagged request id
// (TagRequestID) whose key is known with another tag: the key was reused
// on a different request. Nothing was applied and nothing remembered; the
// first request's result is not given, for it answers another question.
var ErrRequestMismatch = errors.New("this Idempotency-Key was used before on a different request; nothing was done")

// TagRequestID is the request id the HTTP front sends from cluster level
// 6 (LevelRequestDigest) for a unit keyed by the client (Idempotency-Key):
// the key, a NUL (which no HTTP header value holds), and 16 hex digits of
// a SHA-256 of the unit's mode and commands. A retry of the same request
// builds the same unit, so the same id; a different request under the
// same key gets another tag, which the state machine refuses
// (dedupTable.find). Blocked pops' and relayed Redis writes' ids are
// never tagged.
func TagRequestID(key []byte, u *Unit) []byte {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(binary.AppendUvarint(n[:0], uint64(u.Mode)))
	for _, c := range u.Cmds {
		h.Write(binary.AppendUvarint(n[:0], uint64(len(c))))
		for _, a := range c {
			h.Write(binary.AppendUvarint(n[:0], uint64(len(a))))
			h.Write(a)
		}
	}
	sum := h.Sum(nil)
	id := make([]byte, 0, len(key)+1+tagLen)
	id = append(append(id, key...), 0)
	return hex.AppendEncode(id, sum[:tagLen/2])
}

// tagLen is the length of a tagged id's tag, in hex digits.
const tagLen = 16

// untag splits a tagged id (TagRequestID) into its key; ok is false for
// an id of any other form, which is compared whole.
func untag(id string) (key string, ok bool) {
	i := strings.IndexByte(id, 0)
	if i < 0 || len(id)-i-1 != tagLen {
		return "", false
	}
	return id[:i], true
}

// dedupEntry is never changed once inserted: published states share it
// (the trees hold pointers, so a copy-on-write node copy moves 8 bytes an
// entry, not the entry). Dropping its replies inserts a new one.
//
// The result is held encoded (encodeStored), not as a *Result: 200,000
// results with their replies are millions of pointers for the garbage
// collector to trace on every cycle, and it made applying a relayed
// write several times dearer; a byte slice is not traced. A lookup (a
// retry: rare) decodes it.
type dedupEntry struct {
	id   string
	at   int64  // leader time of the original apply
	enc  []byte // encodeStored(result)
	size int64  // repliesSize of its replies: what it counts in keptBytes
	// index is the log index the request was applied at (its result's
	// Index), for dedupTable.forgot.
	index uint64
}

// encodeStored is a stored result: the snapshot's layout from format 2
// (appendResult, its replies, and its error when the first format's codes
// cannot name it), then one byte that says the error was ErrWatch, which
// no code names (a snapshot cannot carry it; in memory it is kept).
func encodeStored(res *Result) []byte {
	dst := appendResult(nil, res)
	dst = appendReplies(dst, res.Replies)
	var errs []Reply
	if res.Err != nil && errCode(res.Err) == 0 {
		errs = []Reply{errReply(res.Err)}
	}
	dst = appendReplies(dst, errs)
	if res.Err == ErrWatch {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// decodeStored reads what encodeStored wrote. Replies past the reader's
// limits (kept below level 4: readableReplies) come back as none, the
// answer for replies no longer held; it never fails, for it runs inside
// Apply, where a panic would stop every replica at the same entry.
func decodeStored(b []byte) *Result {
	r := bufio.NewReader(bytes.NewReader(b))
	res, err := readStored(r)
	if err != nil {
		if res, err = readResult(bufio.NewReader(bytes.NewReader(b)), 0); err != nil {
			return &Result{}
		}
		return res
	}
	if flag, _ := r.ReadByte(); flag == 1 {
		res.Err = ErrWatch
	}
	return res
}

// readStored reads a result in the snapshot's layout from format 2.
func readStored(r *bufio.Reader) (*Result, error) {
	res, err := readResult(r, 0)
	if err != nil {
		return nil, err
	}
	if res.Replies, err = readReplies(r); err != nil {
		return nil, fmt.Errorf("replies: %w", err)
	}
	errs, err := readReplies(r)
	if err != nil || len(errs) > 1 || len(errs) == 1 && errs[0].Kind != KindError {
		return nil, fmt.Errorf("error: %v (%d replies)", err, len(errs))
	}
	if len(errs) == 1 {
		res.Err = errs[0].Err
	}
	return res, nil
}

// readableReplies says whether rs reads back within the snapshot reader's
// limits (readReplies, readReply, readBytes): from level 4 replies that
// would not are not kept, so no snapshot holds what it cannot restore.
func readableReplies(rs []Reply, depth int) bool {
	if len(rs) > maxArgs || depth > maxReplyDepth {
		return false
	}
	for i := range rs {
		if len(rs[i].Bulk) > maxSnapshotString || !readableReplies(rs[i].Elems, depth+1) {
			return false
		}
	}
	return true
}

// newEntry is the entry for res under id at cluster level level.
func newEntry(id string, at int64, res *Result, level uint32) *dedupEntry {
	return &dedupEntry{id: id, at: at, enc: encodeStored(res), size: keptSize(res, level), index: res.Index}
}

// errReplyDropped stands, from level 5, for the error a failed unit
// answered once the budget dropped it: the unit ran once and failed, and
// a retry says so without the text. Only atomic units (HTTP's atomic
// batch) fail as a whole; HTTP answers any retry without replies with
// 409 result_unavailable, so no front shows this text today.
var errReplyDropped = &Error{Msg: "ERR the command failed once; its error reply is no longer held (more kept replies than the request-id table holds)"}

// keptSize is what res counts against DedupMaxReplyBytes at level: its
// replies (repliesSize) and, from level 5, the text of its error when it
// is stored as text (encodeStored). WATCH's abort and errReplyDropped
// are short and kept, so they do not count. Computed from text alone, it
// is the same for a result and for its stored copy read back.
func keptSize(res *Result, level uint32) int64 {
	n := repliesSize(res.Replies, level)
	if text, ok := droppableErr(res.Err, level); ok {
		n += 32 + int64(len(text))
	}
	return n
}

// droppableErr says whether err is kept as text (returned) that counts
// (keptSize) and that dropping replaces with errReplyDropped.
func droppableErr(err error, level uint32) (string, bool) {
	if level < LevelStoredBudget || err == nil || errCode(err) != 0 {
		return "", false
	}
	t := ErrorText(err)
	return t, t != ErrorText(ErrWatch) && t != errReplyDropped.Msg
}

func dedupLess(a, b *dedupEntry) bool { return a.id < b.id }

func dedupTimeLess(a, b *dedupEntry) bool { return a.at < b.at || (a.at == b.at && a.id < b.id) }

type dedupTable struct {
	byID   *btree.BTreeG[*dedupEntry]
	byTime *btree.BTreeG[*dedupEntry]
	// kept holds, by time, the entries whose replies are still kept, and
	// keptBytes their sizes. Both are derived from the entries (rebuilt by
	// insert on restore), so they need no place in a snapshot.
	kept      *btree.BTreeG[*dedupEntry]
	keptBytes int64
	// bytes is the memory the entries hold (entryBytes), derived alike.
	bytes int64
	// forgot (cluster level 5 on) is the highest log index at which an
	// id now forgotten was applied: a resend whose first attempt can only
	// have applied above it would have found its id (Unit.After). The
	// raise to level 5 sets it to the raise's index, since what was
	// forgotten before is not known; snapshots from format 5 carry it.
	forgot uint64
}

func newDedup() dedupTable {
	return dedupTable{byID: btree.NewG(32, dedupLess), byTime: btree.NewG(32, dedupTimeLess),
		kept: btree.NewG(32, dedupTimeLess)}
}

func (d dedupTable) clone() dedupTable {
	return dedupTable{byID: d.byID.Clone(), byTime: d.byTime.Clone(), kept: d.kept.Clone(), keptBytes: d.keptBytes, bytes: d.bytes, forgot: d.forgot}
}

// entryBytes is what e holds in memory, for reports (Stats.RequestIDBytes).
func entryBytes(e *dedupEntry) int64 {
	return dedupEntryOverhead + int64(len(e.id)+len(e.enc))
}

// insert adds e to every index, in place of an entry of the same id (a
// reply dropped; a snapshot naming an id twice).
func (d *dedupTable) insert(e *dedupEntry) {
	if old, ok := d.byID.Get(e); ok {
		d.remove(old)
	}
	d.byID.ReplaceOrInsert(e)
	d.byTime.ReplaceOrInsert(e)
	d.bytes += entryBytes(e)
	if e.size > 0 {
		d.kept.ReplaceOrInsert(e)
		d.keptBytes += e.size
	}
}

// remove takes e out of every index.
func (d *dedupTable) remove(e *dedupEntry) {
	d.byID.Delete(e)
	d.byTime.Delete(e)
	d.bytes -= entryBytes(e)
	if e.size > 0 {
		d.kept.Delete(e)
		d.keptBytes -= e.size
	}
}

// RepliesDropped says whether r is a retry's answer (its request id was
// known) whose replies are no longer kept: the request ran once, and what
// it answered is gone (the bounded table dropped it, or a snapshot kept
// none). A result with an error is not: a transaction its watch stopped
// keeps only ErrWatch.
func (r *Result) RepliesDropped() bool {
	return r.Duplicate && len(r.Replies) == 0 && r.Err == nil
}

// repliesSize is what a result's replies count against
// DedupMaxReplyBytes: their bulk bytes, from level 5 their error texts,
// and a fixed cost per reply.
func repliesSize(rs []Reply, level uint32) int64 {
	var n int64
	for i := range rs {
		n += 32 + int64(len(rs[i].Bulk)) + repliesSize(rs[i].Elems, level)
		if level >= LevelStoredBudget && rs[i].Kind == KindError {
			n += int64(len(ErrorText(rs[i].Err)))
		}
	}
	return n
}

// find looks id up at cluster level level. Below level 6 an id is
// compared whole. From level 6 (LevelRequestDigest) ids are grouped by
// key: a tagged id's key (TagRequestID), or an untagged id itself. The
// entry is id's own; else any of its key's (one scan of the key's range:
// the key itself and key‖NUL‖...) when either id is untagged, for then
// no digest can tell the requests apart: a key first stored untagged
// (below level 6) and retried tagged after the raise, or stored tagged
// and retried by a front that had not yet applied the raise. mismatch
// says that the key is known only under another tag: it was reused on
// a different request.
func (d dedupTable) find(id []byte, level uint32) (e *dedupEntry, mismatch bool) {
	probe := &dedupEntry{id: string(id)}
	if e, ok := d.byID.Get(probe); ok || level < LevelRequestDigest {
		return e, false
	}
	key, tagged := untag(probe.id)
	if tagged {
		probe = &dedupEntry{id: key}
	} else {
		key = probe.id
	}
	// Every id applied relayed through a follower looks here once, when
	// it is new: no allocation past the probe.
	d.byID.AscendGreaterOrEqual(probe, func(o *dedupEntry) bool {
		switch {
		case o.id == key: // the key stored untagged: sorts first
			e = o
		case len(o.id) <= len(key) || o.id[len(key)] != 0 || o.id[:len(key)] != key:
			// past the key's ids
		case !isTagged(o.id):
			return true // not a tag (no front makes these): look further
		case tagged:
			mismatch = true
		default:
			e = o
		}
		return false
	})
	return e, mismatch
}

func isTagged(id string) bool {
	_, ok := untag(id)
	return ok
}

func (d dedupTable) lookup(id []byte, level uint32) (*Result, bool) {
	e, _ := d.find(id, level)
	if e == nil {
		return nil, false
	}
	return decodeStored(e.enc), true
}

// known says whether id is in the table at level (find).
func (d dedupTable) known(id []byte, level uint32) bool {
	e, _ := d.find(id, level)
	return e != nil
}

// mayHaveForgotten says whether a resend whose id is unknown may have
// been applied already and its id forgotten. From level 5 that is exactly
// whether an id applied above after (Unit.After) was forgotten. Below, by
// time: whether ids first applied within ResendHorizon before now may have
// been evicted for room: ids leave oldest first, and only a full table
// evicts one younger than the window, so that happened exactly when the
// table is full and its oldest id is within the horizon. (Both derived
// from the log alone, so every replica judges alike.)
func (d dedupTable) mayHaveForgotten(now int64, after uint64, level uint32) bool {
	if level >= LevelStoredBudget {
		return d.forgot > after
	}
	if d.byTime.Len() < DedupMax {
		return false
	}
	old, _ := d.byTime.Min()
	return old.at > now-ResendHorizon
}

// remember stores res under id at cluster level level and forgets what
// fell out of the window, then keeps to the reply budget (trim).
func (d *dedupTable) remember(id []byte, at int64, res *Result, level uint32) {
	d.insert(newEntry(string(id), at, res, level))
	for d.byTime.Len() > 0 {
		old, _ := d.byTime.Min()
		if old.at >= at-DedupWindow && d.byTime.Len() <= DedupMax {
			break
		}
		d.remove(old)
		if level >= LevelStoredBudget {
			d.forgot = max(d.forgot, old.index)
		}
	}
	d.trim(level)
}

// trim drops the oldest kept replies (from level 5 also error texts,
// errReplyDropped in their place) past DedupMaxReplyBytes, from level 4
// on. A dropped entry counts 0, so the loop ends.
func (d *dedupTable) trim(level uint32) {
	for level >= LevelReplyBudget && d.keptBytes > DedupMaxReplyBytes {
		old, _ := d.kept.Min()
		dropped := decodeStored(old.enc) // published states share the entry: a new one
		dropped.Replies = nil
		if _, ok := droppableErr(dropped.Err, level); ok {
			dropped.Err = errReplyDropped
		}
		d.insert(newEntry(old.id, old.at, dropped, level))
	}
}

// resize counts every entry again by the rules of level, once, when the
// cluster rises to level 5 (every replica at the same index), then trims:
// a replica restored from a snapshot of level 5 counts them so too. An
// entry kept below level 4 with replies a snapshot could not read back
// (readableReplies) decodes without them and would count 0 while still
// holding them: it is stored again as decoded, so no snapshot carries it.
func (d *dedupTable) resize(level uint32) {
	var changed []*dedupEntry
	d.byTime.Ascend(func(e *dedupEntry) bool {
		res, err := readStored(bufio.NewReader(bytes.NewReader(e.enc)))
		if err != nil {
			changed = append(changed, newEntry(e.id, e.at, decodeStored(e.enc), level))
		} else if sz := keptSize(res, level); sz != e.size {
			changed = append(changed, &dedupEntry{id: e.id, at: e.at, enc: e.enc, size: sz, index: e.index})
		}
		return true
	})
	for _, e := range changed {
		d.insert(e)
	}
	d.trim(level)
}

// once runs apply unless id (if any) was already applied, in which case it
// returns the first result again, marked Duplicate, or its key was used on
// another request (find: ErrRequestMismatch at index, nothing applied or
// remembered).
func (s *state) once(id []byte, index uint64, now int64, apply func() Result) Result {
	if id == nil {
		return apply()
	}
	level := s.clusterLevel()
	if e, mismatch := s.dedup.find(id, level); e != nil {
		dup := *decodeStored(e.enc)
		dup.Duplicate = true
		return dup
	} else if mismatch {
		return Result{Index: index, Err: ErrRequestMismatch}
	}
	res := apply()
	if res.forget {
		return res
	}
	stored := res
	stored.Prev, stored.PrevFound = nil, false
	if level >= LevelReplyBudget && !readableReplies(stored.Replies, 0) {
		stored.Replies = nil
	}
	s.dedup.remember(id, now, &stored, level)
	return res
}

// Result errors by code, for storing results in snapshots.
var resultErrs = []error{nil, ErrConditionFailed, ErrNotInteger, ErrOverflow, ErrNotFound}

func errCode(err error) uint64 {
	for i, e := range resultErrs {
		if e == err {
			return uint64(i)
		}
	}
	return 0
}

// appendResult encodes what a retry needs to be answered: not Prev, which
// would keep old values alive (a deduplicated SET ... GET answers without it).
func appendResult(dst []byte, r *Result) []byte {
	dst = binary.AppendUvarint(dst, r.Index)
	dst = binary.AppendUvarint(dst, r.Version)
	dst = binary.AppendVarint(dst, r.Value)
	dst = binary.AppendUvarint(dst, uint64(r.Count))
	dst = binary.AppendUvarint(dst, r.Current)
	deleted := uint64(0) // bit 0: Deleted; bit 1: More
	if r.Deleted {
		deleted = 1
	}
	if r.More {
		deleted |= 2
	}
	dst = binary.AppendUvarint(dst, deleted)
	dst = binary.AppendUvarint(dst, errCode(r.Err))
	dst = binary.AppendUvarint(dst, uint64(len(r.Results)))
	for i := range r.Results {
		dst = appendResult(dst, &r.Results[i])
	}
	return dst
}

func readResult(r io.ByteReader, depth int) (*Result, error) {
	var vals [8]uint64
	for i := range vals {
		var err error
		if i == 2 {
			var v int64
			v, err = binary.ReadVarint(r)
			vals[i] = uint64(v)
		} else {
			vals[i], err = binary.ReadUvarint(r)
		}
		if err != nil {
			return nil, err
		}
	}
	if vals[6] >= uint64(len(resultErrs)) || vals[7] > MaxBatch || (depth > 0 && vals[7] > 0) {
		return nil, errors.New("bad stored result")
	}
	res := &Result{Index: vals[0], Version: vals[1], Value: int64(vals[2]), Count: int(vals[3]),
		Current: vals[4], Deleted: vals[5]&1 == 1, More: vals[5]&2 != 0, Err: resultErrs[vals[6]]}
	for i := uint64(0); i < vals[7]; i++ {
		sub, err := readResult(r, depth+1)
		if err != nil {
			return nil, err
		}
		res.Results = append(res.Results, *sub)
	}
	return res, nil
}
