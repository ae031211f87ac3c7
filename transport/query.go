package transport

import (
	"net/http"
	"net/url"
	"strings"
)

// query reads a request's query parameters. r.URL.Query() builds a map,
// a slice and strings for every request; most queries here are a plain
// "consistency=stale" or "ttl=30", which query reads in place. A query
// with anything url.ParseQuery would decode or reject ("%", "+", ";")
// goes through url.Values, so the answers are url.Values' own.
type query struct {
	raw    string
	values url.Values // when raw needs decoding
}

func queryFrom(r *http.Request) query {
	q := query{raw: r.URL.RawQuery}
	if strings.ContainsAny(q.raw, "%+;") {
		q.values = r.URL.Query()
	}
	return q
}

// Get is url.Values.Get: the first value of key, "" if none.
func (q query) Get(key string) string {
	if q.values != nil {
		return q.values.Get(key)
	}
	for rest := q.raw; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		if pair == "" {
			continue
		}
		if k, v, _ := strings.Cut(pair, "="); k == key {
			return v
		}
	}
	return ""
}
