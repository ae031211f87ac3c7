package transport_test

import (
	"net/http"
	"strings"
	"testing"
)

func TestEval(t *testing.T) {
	n := startLeader(t)
	post := func(body string, query string) response {
		return do(t, http.MethodPost, n.URL+"/v1/eval"+query, strings.NewReader(body))
	}
	r := post(`{"script":"redis.call('SET', KEYS[1], ARGV[1]) return {redis.call('GET', KEYS[1]), 7, false, {ok='fine'}}","keys":["k"],"args":["v"]}`, "")
	if r.status != http.StatusOK || !strings.HasPrefix(string(r.body), `{"result":["v",7,null,{"ok":"fine"}],"index":`) {
		t.Fatalf("eval: %s", r)
	}
	r = post(`{"script":"return redis.call('GET', KEYS[1])","keys":["k"],"readonly":true}`, "?consistency=stale")
	if r.status != http.StatusOK || !strings.HasPrefix(string(r.body), `{"result":"v"`) {
		t.Fatalf("eval readonly: %s", r)
	}
	wantError(t, "noscript", post(`{"sha":"`+strings.Repeat("0", 40)+`"}`, ""), http.StatusNotFound, "noscript")
	wantError(t, "compile", post(`{"script":"return +"}`, ""), http.StatusBadRequest, "script_error")
	wantError(t, "runtime", post(`{"script":"error('x')"}`, ""), http.StatusBadRequest, "script_error")
	wantError(t, "write in readonly", post(`{"script":"return redis.call('SET','a','b')","readonly":true}`, ""), http.StatusBadRequest, "script_error")
	wantError(t, "both", post(`{"script":"return 1","sha":"ab"}`, ""), http.StatusBadRequest, "bad_eval")
}
