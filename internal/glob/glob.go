// Package glob owns Redis' glob patterns (KEYS, SCAN MATCH, CONFIG GET):
// matching a key against one, as stringmatchlen does, in linear time.
package glob

// Match reports whether s matches the glob pattern p as Redis' KEYS,
// SCAN MATCH and friends read it (stringmatchlen): '*' any run of bytes,
// '?' one byte, "[abc]", "[^abc]" and "[a-z]" a byte of (or not of) a set,
// and '\' taking the next byte literally. A '[' without its ']' takes the
// rest of the pattern as its set, as Redis does. The match backtracks only
// to the latest '*' (a '*' that matched once never needs to match again
// differently), so it is linear in len(s) per star: no pattern can make it
// exponential.
func Match(p, s []byte) bool {
	pi, si := 0, 0
	starP, starS := -1, 0 // the latest '*' in p, and where s stood after it
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				if pi == len(p) {
					return true
				}
				starP, starS = pi, si
				continue
			case '?':
				pi, si = pi+1, si+1
				continue
			case '[':
				if ok, next := matchClass(p, pi, s[si]); ok {
					pi, si = next, si+1
					continue
				}
			case '\\':
				if pi+1 < len(p) {
					if p[pi+1] == s[si] {
						pi, si = pi+2, si+1
						continue
					}
					break
				}
				fallthrough // a trailing '\' is itself
			default:
				if p[pi] == s[si] {
					pi, si = pi+1, si+1
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		pi, si = starP, starS
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches byte c against the set that starts at p[i] == '[',
// and returns the index after its ']' (or the end of p).
func matchClass(p []byte, i int, c byte) (bool, int) {
	i++
	not := i < len(p) && p[i] == '^'
	if not {
		i++
	}
	match := false
	for ; i < len(p) && p[i] != ']'; i++ {
		switch {
		case p[i] == '\\' && i+1 < len(p):
			i++
			match = match || p[i] == c
		case i+2 < len(p) && p[i+1] == '-':
			lo, hi := p[i], p[i+2]
			if lo > hi {
				lo, hi = hi, lo
			}
			match = match || (lo <= c && c <= hi)
			i += 2
		default:
			match = match || p[i] == c
		}
	}
	if i < len(p) {
		i++ // the ']'
	}
	return match != not, i
}
