package subjects

import (
	"strconv"
	"strings"
)

// Index maps patterns to values and finds the values whose patterns match a
// literal subject; it is the fan-out hub's table from subscriptions to
// subscribers. Not safe for concurrent use: the caller holds its own lock.
//
// It is a token trie in the manner of nats-server's gsl: each level holds its
// literal children in a map and its "*" and ">" children in their own fields,
// so a Match visits only the branches that can match, and allocates nothing.
// The zero Index is empty and ready to use.
type Index[T comparable] struct {
	root  level[T]
	count int // stored (pattern, value) pairs
}

// level is one token position: the children by next token.
type level[T comparable] struct {
	nodes    map[string]*node[T] // literal tokens; nil when there are none
	pwc, fwc *node[T]
}

// node is one token of one or more patterns: the values of the patterns that
// end here, and the level of the patterns that go on.
//
// Values are a slice, because Match ranges over them for every message, with
// a map from value to position so that Insert and Remove stay O(1) for
// patterns with many subscribers.
type node[T comparable] struct {
	next *level[T]
	vals []T
	pos  map[T]int // index in vals; a set, so a repeated Insert is stored once
}

// maxStack is how many tokens Match and Remove hold on the stack; longer
// subjects work, with one allocation.
const maxStack = 32

// NewIndex returns an empty Index.
func NewIndex[T comparable]() *Index[T] {
	return &Index[T]{}
}

// Len returns the number of stored (pattern, value) pairs.
func (ix *Index[T]) Len() int {
	return ix.count
}

// Insert stores v under pattern; the same (pattern, v) twice is stored once.
// The pattern must have been validated (ValidatePattern, FromPath): like
// http.ServeMux.Handle, Insert panics on a malformed one (an empty token or
// ">" before the end), since that is a bug in the caller.
func (ix *Index[T]) Insert(pattern string, v T) {
	if !wellFormed(pattern) {
		panic("subjects: Index.Insert of malformed pattern " + strconv.Quote(pattern))
	}
	l := &ix.root
	var n *node[T]
	for rest := pattern; ; {
		tok, after, more := strings.Cut(rest, ".")
		n = l.add(tok)
		if !more {
			break
		}
		if n.next == nil {
			n.next = &level[T]{}
		}
		l, rest = n.next, after
	}
	if _, dup := n.pos[v]; dup {
		return
	}
	if n.pos == nil {
		n.pos = make(map[T]int)
	}
	n.pos[v] = len(n.vals)
	n.vals = append(n.vals, v)
	ix.count++
}

// step is one token of a Remove's descent, kept for pruning on the way up.
type step[T comparable] struct {
	l   *level[T]
	tok string
	n   *node[T]
}

// Remove deletes the pair (pattern, v) and reports whether it was stored.
// Nodes left without values or children are pruned, so an index whose
// subscribers come and go does not grow without bound.
func (ix *Index[T]) Remove(pattern string, v T) bool {
	if !wellFormed(pattern) {
		return false
	}
	var stack [maxStack]step[T]
	path := stack[:0]
	l := &ix.root
	for rest := pattern; ; {
		tok, after, more := strings.Cut(rest, ".")
		n := l.get(tok)
		if n == nil {
			return false
		}
		path = append(path, step[T]{l, tok, n})
		if !more {
			break
		}
		if l = n.next; l == nil {
			return false
		}
		rest = after
	}
	if !path[len(path)-1].n.drop(v) {
		return false
	}
	ix.count--
	for i := len(path) - 1; i >= 0; i-- {
		s := path[i]
		if len(s.n.vals) > 0 || s.n.next != nil {
			break // still in use, and so are its ancestors
		}
		s.l.remove(s.tok)
		if i > 0 && s.l.empty() {
			path[i-1].n.next = nil
		}
	}
	return true
}

// Match calls fn once for each stored (pattern, value) pair whose pattern
// matches the literal subject, in no particular order. A subject that is
// malformed or holds a wildcard matches nothing. fn must not modify the
// index. Match allocates nothing for subjects of up to 32 tokens.
func (ix *Index[T]) Match(subject string, fn func(T)) {
	var stack [maxStack]string
	toks := stack[:0]
	for rest := subject; ; {
		tok, after, more := strings.Cut(rest, ".")
		if tok == "" || tok == pwc || tok == fwc {
			return
		}
		toks = append(toks, tok)
		if !more {
			break
		}
		rest = after
	}
	matchLevel(&ix.root, toks, fn)
}

// matchLevel follows the literal branch in a loop and recurses only into
// "*" branches; a ">" child matches whatever is left, which is at least the
// current token.
func matchLevel[T comparable](l *level[T], toks []string, fn func(T)) {
	last := len(toks) - 1
	for i, tok := range toks {
		if l == nil {
			return
		}
		if l.fwc != nil {
			l.fwc.each(fn)
		}
		if l.pwc != nil {
			if i == last {
				l.pwc.each(fn)
			} else {
				matchLevel(l.pwc.next, toks[i+1:], fn)
			}
		}
		n := l.nodes[tok]
		if n == nil {
			return
		}
		if i == last {
			n.each(fn)
			return
		}
		l = n.next
	}
}

func (n *node[T]) each(fn func(T)) {
	for _, v := range n.vals {
		fn(v)
	}
}

// drop removes v from the node's values by moving the last one into its
// place, and reports whether v was there.
func (n *node[T]) drop(v T) bool {
	i, ok := n.pos[v]
	if !ok {
		return false
	}
	last := len(n.vals) - 1
	if i != last {
		n.vals[i] = n.vals[last]
		n.pos[n.vals[i]] = i
	}
	var zero T
	n.vals[last] = zero // let the GC have it
	n.vals = n.vals[:last]
	delete(n.pos, v)
	if last == 0 {
		n.vals, n.pos = nil, nil
	}
	return true
}

// get returns the child for tok, or nil.
func (l *level[T]) get(tok string) *node[T] {
	switch tok {
	case pwc:
		return l.pwc
	case fwc:
		return l.fwc
	}
	return l.nodes[tok]
}

// add returns the child for tok, creating it if needed.
func (l *level[T]) add(tok string) *node[T] {
	if n := l.get(tok); n != nil {
		return n
	}
	n := &node[T]{}
	switch tok {
	case pwc:
		l.pwc = n
	case fwc:
		l.fwc = n
	default:
		if l.nodes == nil {
			l.nodes = make(map[string]*node[T])
		}
		l.nodes[tok] = n
	}
	return n
}

// remove drops the child for tok.
func (l *level[T]) remove(tok string) {
	switch tok {
	case pwc:
		l.pwc = nil
	case fwc:
		l.fwc = nil
	default:
		delete(l.nodes, tok)
		if len(l.nodes) == 0 {
			l.nodes = nil
		}
	}
}

func (l *level[T]) empty() bool {
	return len(l.nodes) == 0 && l.pwc == nil && l.fwc == nil
}

// numNodes counts the trie's nodes, so tests can see that pruning works.
func (ix *Index[T]) numNodes() int {
	return ix.root.numNodes()
}

func (l *level[T]) numNodes() int {
	if l == nil {
		return 0
	}
	num := 0
	for _, n := range l.nodes {
		num += 1 + n.next.numNodes()
	}
	for _, n := range [...]*node[T]{l.pwc, l.fwc} {
		if n != nil {
			num += 1 + n.next.numNodes()
		}
	}
	return num
}
