package fsm

import "bytes"

// Redis glob patterns (KEYS, SCAN MATCH): a port of stringmatchlen from
// Redis' util.c, byte by byte and case-sensitive. path.Match differs: it
// treats '/' specially, spells negation [!a] instead of [^a], and rejects
// malformed patterns that Redis accepts.
//
//	*      any run of bytes, including none
//	?      exactly one byte
//	[abc]  one of the bytes; [^abc] none of them; [a-z] a range (ends in either order)
//	\x     the byte x literally

// globMatch reports whether s matches pattern. The empty key matches a
// pattern of stars only (Redis' matcher says no, but KEYS * and SCAN skip
// it and list every key).
func GlobMatch(pattern, s []byte) bool {
	if len(s) == 0 {
		return len(bytes.Trim(pattern, "*")) == 0
	}
	skipLonger := false
	return globMatchAt(pattern, s, &skipLonger, 0)
}

func globMatchAt(p, s []byte, skipLonger *bool, nesting int) bool {
	if nesting > 1000 { // as Redis: bound the recursion of abusive patterns
		return false
	}
	for len(p) > 0 && len(s) > 0 {
		switch p[0] {
		case '*':
			for len(p) >= 2 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for len(s) > 0 {
				if globMatchAt(p[1:], s, skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				s = s[1:]
			}
			// Nothing after this '*' matches anywhere in the rest of s,
			// so no longer match of an earlier '*' can help either.
			*skipLonger = true
			return false
		case '?':
			s = s[1:]
		case '[':
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			match := false
			for {
				if len(p) == 0 {
					// Unterminated class: Redis steps back so that the
					// pattern ends here.
					p = []byte{']'}
					break
				}
				if p[0] == '\\' && len(p) >= 2 {
					p = p[1:]
					if p[0] == s[0] {
						match = true
					}
				} else if p[0] == ']' {
					break
				} else if len(p) >= 3 && p[1] == '-' {
					lo, hi := p[0], p[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					p = p[2:]
					if s[0] >= lo && s[0] <= hi {
						match = true
					}
				} else if p[0] == s[0] {
					match = true
				}
				p = p[1:]
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if p[0] != s[0] {
				return false
			}
			s = s[1:]
		}
		p = p[1:]
		if len(s) == 0 {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			break
		}
	}
	return len(p) == 0 && len(s) == 0
}

// literalPrefix is the part of pattern before its first wildcard, with
// escapes resolved: every key the pattern matches starts with it, so a
// listing need only walk keys under this prefix.
func literalPrefix(pattern []byte) []byte {
	var out []byte
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*', '?', '[':
			return out
		case '\\':
			if i+1 < len(pattern) {
				i++
			}
			out = append(out, pattern[i])
		default:
			out = append(out, c)
		}
	}
	return out
}
