package fanout

import "sort"

// ring keeps the most recent frames in sequence order, bounded by count and
// bytes, so that most resumes never touch JetStream. It covers the range
// (floor, head]: every served message in that range is in the ring.
type ring struct {
	frames   []*Frame // circular
	start, n int
	bytes    int
	maxBytes int
	floor    uint64 // every served message after floor is kept
	head     uint64 // last sequence seen
}

func newRing(maxEvents, maxBytes int, head uint64) *ring {
	return &ring{frames: make([]*Frame, maxEvents), maxBytes: maxBytes, floor: head, head: head}
}

func (r *ring) at(i int) *Frame { return r.frames[(r.start+i)%len(r.frames)] }

// push appends f, evicting the oldest frames beyond the limits.
func (r *ring) push(f *Frame) {
	for r.n > 0 && (r.n == len(r.frames) || r.bytes+f.Size() > r.maxBytes) {
		r.evict()
	}
	r.frames[(r.start+r.n)%len(r.frames)] = f
	r.n++
	r.bytes += f.Size()
	r.head = f.Seq
}

func (r *ring) evict() {
	old := r.frames[r.start]
	r.frames[r.start] = nil
	r.start = (r.start + 1) % len(r.frames)
	r.n--
	r.bytes -= old.Size()
	r.floor = old.Seq
}

// reset empties the ring after the stream went back in sequence (it was
// recreated): nothing before head can be served from memory any more.
func (r *ring) reset(head uint64) {
	for r.n > 0 {
		r.evict()
	}
	r.floor, r.head = head, head
}

// covers reports whether every served message after pos is in the ring.
func (r *ring) covers(pos uint64) bool { return pos >= r.floor }

// after returns the index of the first frame with seq > pos.
func (r *ring) after(pos uint64) int {
	return sort.Search(r.n, func(i int) bool { return r.at(i).Seq > pos })
}
