package fsm

import (
	"math"
	"strconv"
	"time"
)

// MaxTTL bounds expiries (relative, or absolute times this far ahead), so
// now + TTL in nanoseconds stays far inside int64. Redis accepts more;
// docs/api.md lists the difference.
const MaxTTL = 100 * 365 * 24 * time.Hour

// eq compares an argument with a lower-case word, ignoring ASCII case.
func eq(arg []byte, word string) bool {
	if len(arg) != len(word) {
		return false
	}
	for i, c := range arg {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != word[i] {
			return false
		}
	}
	return true
}

// ParseInt reads a decimal int64 as Redis's string2ll does: an optional
// '-', no '+', no spaces, no leading zeros, nothing after the digits.
func ParseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 20 || b[0] == '+' || (len(b) > 1 && b[0] == '0') || (len(b) > 1 && b[0] == '-' && b[1] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// expiryNow is the time a relative expiry counts from: from level 6
// (LevelRedisFixes) the entry's time cut to the millisecond, as Redis
// keeps expiries in milliseconds (EXPIRE ... LT against an expiry set in
// the same millisecond then compares equal, as in Redis).
//
// A Tx without a state lowers a command for a cluster below level 3
// (lower.go): the old rule.
func (t *Tx) expiryNow() int64 {
	if t.s != nil && t.s.clusterLevel() >= LevelRedisFixes {
		return t.now - t.now%int64(time.Millisecond)
	}
	return t.now
}

// expireIn parses an expiry argument in unit (relative to now, or
// absolute) into absolute Unix ns, answering Redis's errors for name.
// Redis refuses a time that is not positive; a time in the past (an
// absolute one) is accepted and leaves the key expired.
func expireIn(arg []byte, unit time.Duration, absolute bool, now int64, name string) (int64, Reply, bool) {
	n, ok := ParseInt(arg)
	if !ok {
		return 0, replyNotInteger, false
	}
	if n <= 0 || n > math.MaxInt64/int64(unit) {
		return 0, replyInvalidExpire(name), false
	}
	at := n * int64(unit)
	if !absolute {
		if at > int64(MaxTTL) {
			return 0, replyInvalidExpire(name), false
		}
		return now + at, Reply{}, true
	}
	if at-now > int64(MaxTTL) {
		return 0, replyInvalidExpire(name), false
	}
	return at, Reply{}, true
}
