package main

// account is the exact bookkeeping of one client: it is told the index
// (0..n-1, in publish order) of each event the client receives and classifies
// it, so that "nothing lost, nothing repeated, nothing reordered" is a count,
// not an impression. It is pure and allocation-free after construction so
// that it can be unit tested and run for 19,000 clients per process.
type account struct {
	n          uint64
	seen       []uint64 // bit i: index i was received
	distinct   uint64   // indices received at least once
	maxSeen    uint64   // 1 + highest index seen, 0 before the first
	duplicates uint64   // received again after a first time
	outOfOrder uint64   // first arrival of an index below one already seen
	unexpected uint64   // events outside the expectation
}

// accountReport is an account's result; counts add across clients.
type accountReport struct {
	Expected   uint64 `json:"expected"`
	Received   uint64 `json:"received"` // every event observed, duplicates included
	Lost       uint64 `json:"lost"`
	Duplicates uint64 `json:"duplicates"`
	OutOfOrder uint64 `json:"out_of_order"`
	Unexpected uint64 `json:"unexpected"`
}

func newAccount(n uint64) *account {
	return &account{n: n, seen: make([]uint64, (n+63)/64)}
}

// observe records the arrival of expected index i.
func (a *account) observe(i uint64) {
	if i >= a.n {
		a.unexpected++
		return
	}
	w, bit := i/64, uint64(1)<<(i%64)
	if a.seen[w]&bit != 0 {
		a.duplicates++
		return
	}
	a.seen[w] |= bit
	a.distinct++
	if i+1 < a.maxSeen {
		a.outOfOrder++
	} else {
		a.maxSeen = i + 1
	}
}

// observeUnexpected records an event that is not part of the expectation
// (wrong subject, wrong run, unparsable payload).
func (a *account) observeUnexpected() { a.unexpected++ }

// complete reports whether every expected event has arrived.
func (a *account) complete() bool { return a.distinct == a.n }

// report says what happened so far; anything not yet received counts as lost.
func (a *account) report() accountReport {
	return accountReport{
		Expected:   a.n,
		Received:   a.distinct + a.duplicates + a.unexpected,
		Lost:       a.n - a.distinct,
		Duplicates: a.duplicates,
		OutOfOrder: a.outOfOrder,
		Unexpected: a.unexpected,
	}
}

func (r *accountReport) add(o accountReport) {
	r.Expected += o.Expected
	r.Received += o.Received
	r.Lost += o.Lost
	r.Duplicates += o.Duplicates
	r.OutOfOrder += o.OutOfOrder
	r.Unexpected += o.Unexpected
}
