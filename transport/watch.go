package transport

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/raftcache/raftcache/node"
)

// GET /v1/watch?prefix=P streams the changes of keys under P as
// server-sent events, from the node asked (any member): one event per
// changed key, in log order, with progress notices between them while the
// node can vouch for its state (node/feed.go). A client resumes with the
// Last-Event-ID header (or ?after=); 410 Gone means the events asked for
// are no longer kept and it must relist.
//
//	id: 120.1
//	event: put
//	data: {"key":"user:1","op":"put","version":120,"index":120}
//
//	id: 120.1
//	event: progress
//	data: {"applied":124}
//
// A stream is not a request: it is exempt from the in-flight bound (it
// counts against its own, node.Config.MaxWatches) and from the server's
// write timeout, and instead every event must be written within
// watchWriteDeadline or the stream ends. It also ends when the node stops
// vouching for its state (event "error", then close) or the client falls
// too far behind; the client resumes from its last id.

const watchWriteDeadline = 10 * time.Second

type watchEventJSON struct {
	Key     string `json:"key,omitempty"`
	KeyB64  string `json:"key_b64,omitempty"`
	Op      string `json:"op"`
	Version uint64 `json:"version,omitempty"`
	Index   uint64 `json:"index"`
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	prefix := q.Get("prefix")
	if b := q.Get("prefix_b64"); b != "" {
		p, err := base64.StdEncoding.DecodeString(b)
		if err != nil {
			writeError(w, badRequest("bad_prefix", "prefix_b64 is not standard base64"))
			return
		}
		prefix = string(p)
	}
	if err := node.CheckKey([]byte(prefix)); err != nil {
		writeError(w, err)
		return
	}
	var after *node.EventID
	from := r.Header.Get("Last-Event-ID")
	if from == "" {
		from = q.Get("after")
	}
	if from != "" {
		id, err := node.ParseEventID(from)
		if err != nil {
			writeError(w, badRequest("bad_event_id", err.Error()))
			return
		}
		after = &id
	}
	select {
	case <-s.streamsDone:
		writeError(w, node.ErrClosed)
		return
	default:
	}
	watch, err := s.node.Watch(prefix, after)
	if err != nil {
		writeError(w, err)
		return
	}
	defer watch.Close()
	s.metrics.watches.Add(1)
	defer s.metrics.watches.Add(-1)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 512)
	write := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(watchWriteDeadline))
		if _, err := w.Write(buf); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// A first comment line sends the headers at once, so the client
	// knows the stream is open before the first event.
	buf = append(buf[:0], ": watching\n\n"...)
	if !write() {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.streamsDone:
			buf = appendSSE(buf[:0], "", "error", mustJSON(map[string]string{"error": node.ErrClosed.Error()}))
			write()
			return
		case e, ok := <-watch.C():
			if !ok {
				msg := "the watch ended"
				if err := watch.Err(); err != nil {
					msg = err.Error()
				}
				buf = appendSSE(buf[:0], "", "error", mustJSON(map[string]string{"error": msg}))
				write()
				return
			}
			buf = appendWatchEvent(buf[:0], e)
			// Drain what is already queued into the same write.
			for more := true; more && len(buf) < 64<<10; {
				select {
				case e2, ok := <-watch.C():
					if !ok {
						more = false
						break
					}
					buf = appendWatchEvent(buf, e2)
				default:
					more = false
				}
			}
			if !write() {
				return
			}
			s.metrics.watchEvents.Add(1)
		}
	}
}

func appendWatchEvent(buf []byte, e node.WatchEvent) []byte {
	if e.Progress() {
		return appendSSE(buf, e.ID.String(), "progress", []byte(`{"applied":`+strconv.FormatUint(e.Applied, 10)+`}`))
	}
	j := watchEventJSON{Op: e.Op, Version: e.Version, Index: e.ID.Index}
	if utf8.ValidString(e.Key) {
		j.Key = e.Key
	} else {
		j.KeyB64 = base64.StdEncoding.EncodeToString([]byte(e.Key))
	}
	return appendSSE(buf, e.ID.String(), e.Op, mustJSON(j))
}

func appendSSE(buf []byte, id, event string, data []byte) []byte {
	if id != "" {
		buf = append(buf, "id: "...)
		buf = append(buf, id...)
		buf = append(buf, '\n')
	}
	buf = append(buf, "event: "...)
	buf = append(buf, event...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...)
	return append(buf, "\n\n"...)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs come here
	}
	return b
}

// isWatch says whether r opens a watch stream (exempt from the in-flight
// bound, which is for requests that end).
func isWatch(r *http.Request) bool { return r.URL.Path == "/v1/watch" }
