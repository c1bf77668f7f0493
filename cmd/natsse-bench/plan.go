package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/natsse/natsse/subjects"
)

// plan says what a publisher publishes, so that every client can compute
// exactly which messages it must receive: message g (1..count) goes to
// subject (g-1) mod len(subjects), round-robin. The same plan string is given
// to "publish" (which prints it) and to "clients -expect".
//
// Format: comma-separated key=value pairs, e.g.
//
//	count=2000,subjects=events.bench
//	count=20000,users=10000,run=s3a     (subjects events.users.0 .. events.users.9999)
//	count=10,subjects=events.a+events.b (several explicit subjects joined by "+")
//	count=4000,users=10000,streams=3    (events<i mod 3>.users.<i>: user i in stream S<i mod 3>)
type plan struct {
	Count    uint64
	Subjects []string // explicit subjects, or nil when Users is set
	Users    int      // subjects events.users.<i>, i in [0, Users)
	// Streams > 1 spreads the users over that many streams, S0 on events0.>,
	// S1 on events1.>, ...: user i's subject is events<i mod Streams>.users.<i>,
	// so one round-robin over the users feeds the streams evenly, interleaved.
	Streams int
	Run     string // run id carried in every payload; empty accepts any
}

func parsePlan(s string) (plan, error) {
	var p plan
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p, fmt.Errorf("plan %q: %q is not key=value", s, kv)
		}
		var err error
		switch k {
		case "count":
			p.Count, err = strconv.ParseUint(v, 10, 64)
		case "subjects":
			p.Subjects = strings.Split(v, "+")
		case "users":
			p.Users, err = strconv.Atoi(v)
		case "streams":
			p.Streams, err = strconv.Atoi(v)
		case "run":
			p.Run = v
		default:
			err = fmt.Errorf("unknown key (want count, subjects, users, streams, run)")
		}
		if err != nil {
			return p, fmt.Errorf("plan %q: %s: %v", s, k, err)
		}
	}
	return p, p.check()
}

func (p plan) check() error {
	switch {
	case p.Count == 0:
		return fmt.Errorf("plan: count must be > 0")
	case (len(p.Subjects) == 0) == (p.Users <= 0):
		return fmt.Errorf("plan: give exactly one of subjects or users")
	case p.Streams < 0 || p.Streams > 1 && p.Users <= 0:
		return fmt.Errorf("plan: streams needs users, and is not negative")
	case strings.ContainsAny(p.Run, " ,"):
		return fmt.Errorf("plan: run id %q has a space or comma", p.Run)
	}
	return nil
}

func (p plan) String() string {
	s := "count=" + strconv.FormatUint(p.Count, 10)
	if p.Users > 0 {
		s += ",users=" + strconv.Itoa(p.Users)
		if p.Streams > 1 {
			s += ",streams=" + strconv.Itoa(p.Streams)
		}
	} else {
		s += ",subjects=" + strings.Join(p.Subjects, "+")
	}
	if p.Run != "" {
		s += ",run=" + p.Run
	}
	return s
}

// numSubjects is the length of the round-robin.
func (p plan) numSubjects() int {
	if p.Users > 0 {
		return p.Users
	}
	return len(p.Subjects)
}

// subject is the subject of round-robin slot j.
func (p plan) subject(j int) string {
	if p.Users > 0 {
		if p.Streams > 1 {
			return streamPrefix(p.streamOfUser(j)) + ".users." + strconv.Itoa(j)
		}
		return "events.users." + strconv.Itoa(j)
	}
	return p.Subjects[j]
}

// streamOfUser is the stream index of user j: j mod Streams (0 with one stream).
func (p plan) streamOfUser(j int) int {
	if p.Streams > 1 {
		return j % p.Streams
	}
	return 0
}

// streamOf is the stream index whose subjects (streamPrefix(k).>) hold
// subject s, or -1 when the plan has one stream or s is in none of them.
func (p plan) streamOf(s string) int {
	if p.Streams <= 1 {
		return -1
	}
	first, _, _ := strings.Cut(s, ".")
	k, err := strconv.Atoi(strings.TrimPrefix(first, "events"))
	if err != nil || k < 0 || k >= p.Streams || first != streamPrefix(k) {
		return -1
	}
	return k
}

// streamName and streamPrefix name stream k of a plan with several streams:
// S<k> on the subjects events<k>.>.
func streamName(k int) string   { return "S" + strconv.Itoa(k) }
func streamPrefix(k int) string { return "events" + strconv.Itoa(k) }

// expectation is what one set of subscribed patterns must receive from a plan,
// as a dense numbering of the expected messages: index(g) maps message g to
// 0..n-1 in publish order, so an account needs n bits, not count bits. The
// same expectation is shared by every client with the same patterns, and the
// common shapes (one slot, every slot) need no per-slot table, so 10,000
// clients on 10,000 different subjects do not hold 10,000 tables.
type expectation struct {
	n     uint64  // messages expected
	slots uint64  // round-robin length S
	per   uint64  // matching slots per round
	only  int     // the single matching slot when per == 1
	rank  []int32 // general case: rank[j] = matching slots before j, or -1
}

func newExpectation(p plan, patterns []string) *expectation {
	var slots []int
	for j := range p.numSubjects() {
		subj := p.subject(j)
		for _, pat := range patterns {
			if subjects.Match(pat, subj) {
				slots = append(slots, j)
				break
			}
		}
	}
	return newExpectationSlots(p, slots)
}

// newExpectationSlots builds the expectation of a subscription that matches
// the given round-robin slots (in any order, duplicates allowed).
func newExpectationSlots(p plan, slots []int) *expectation {
	s := p.numSubjects()
	e := &expectation{slots: uint64(s)}
	match := make([]bool, s)
	for _, j := range slots {
		if !match[j] {
			match[j] = true
			e.per++
			e.only = j
		}
	}
	if e.per > 1 && e.per < e.slots {
		e.rank = make([]int32, s)
		r := int32(0)
		for j := range s {
			e.rank[j] = -1
			if match[j] {
				e.rank[j] = r
				r++
			}
		}
	}
	full, rest := p.Count/e.slots, p.Count%e.slots
	e.n = full * e.per
	for j := range rest {
		if match[j] {
			e.n++
		}
	}
	return e
}

// index maps message g (1-based) to its expected index, or ok=false if this
// subscription should never see g.
func (e *expectation) index(g uint64) (uint64, bool) {
	if g == 0 || e.per == 0 {
		return 0, false
	}
	q, r := (g-1)/e.slots, (g-1)%e.slots
	var i uint64
	switch {
	case e.per == e.slots:
		i = g - 1
	case e.per == 1:
		if r != uint64(e.only) {
			return 0, false
		}
		i = q
	default:
		rk := e.rank[r]
		if rk < 0 {
			return 0, false
		}
		i = q*e.per + uint64(rk)
	}
	return i, i < e.n
}
