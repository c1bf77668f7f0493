package upstream

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestServingProblem: what natsse reads in a stream's info to tell whether
// the NATS server it is connected to can deliver anything new. A server
// cut off from its cluster still answers for the stream, and /readyz must
// not take that answer for readiness.
func TestServingProblem(t *testing.T) {
	peer := func(name string, active time.Duration, offline bool) *jetstream.PeerInfo {
		return &jetstream.PeerInfo{Name: name, Current: true, Active: active, Offline: offline}
	}
	cases := []struct {
		name string
		ci   *jetstream.ClusterInfo
		want string // "" or a part of the problem
	}{
		{"not clustered", nil, ""},
		{"one server", &jetstream.ClusterInfo{Leader: "n1"}, ""},
		{"R3, all heard", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{peer("n2", 500*time.Millisecond, false), peer("n3", time.Second, false)}}, ""},
		{"R3, one replica lost", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{peer("n2", time.Minute, true), peer("n3", time.Second, false)}}, ""},
		{"no leader: the replica of a cut-off server", &jetstream.ClusterInfo{Replicas: []*jetstream.PeerInfo{peer("n1", 8*time.Second, false), peer("n2", 0, false), peer("n3", 9*time.Second, false)}}, "no leader"},
		{"R3, a leader that hears from no one", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{peer("n2", 5*time.Second, false), peer("n3", 5*time.Second, false)}}, "heard from 0 of its 2 replicas"},
		{"R5, a leader that hears from one", &jetstream.ClusterInfo{Leader: "n1", Replicas: []*jetstream.PeerInfo{peer("n2", time.Second, false), peer("n3", 5*time.Second, false), peer("n4", time.Minute, true), peer("n5", 4*time.Second, false)}}, "heard from 1 of its 4 replicas"},
	}
	for _, tc := range cases {
		got := servingProblem(&jetstream.StreamInfo{Cluster: tc.ci}, 3*time.Second)
		if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
