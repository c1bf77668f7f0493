package deploy_test

import (
	"os"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// instruction is one Dockerfile instruction as BuildKit's parser reads it.
type instruction struct {
	cmd   string   // lower case: from, run, user, …
	args  []string // the instruction's words (exec form: the JSON array's)
	json  bool     // exec form
	flags []string
}

// stages parses ../Dockerfile with BuildKit's own parser (what docker build
// runs) and splits it into its build stages.
func stages(t *testing.T) [][]instruction {
	t.Helper()
	f, err := os.Open("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	var out [][]instruction
	for _, n := range res.AST.Children {
		in := instruction{cmd: strings.ToLower(n.Value), json: n.Attributes["json"], flags: n.Flags}
		for a := n.Next; a != nil; a = a.Next {
			in.args = append(in.args, a.Value)
		}
		if in.cmd == "healthcheck" && len(in.args) > 0 && strings.EqualFold(in.args[0], "CMD") {
			in.args = in.args[1:] // HEALTHCHECK CMD …: the command's words
		}
		if in.cmd == "from" || len(out) == 0 {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], in)
	}
	return out
}

// TestDockerfileShellFree: the image that runs is distroless, with no RUN
// (it has no shell), a numeric non-root user, its health check is natsse's
// own command in exec form (no wget, no shell), and the build stamps the
// version into the binary.
func TestDockerfileShellFree(t *testing.T) {
	all := stages(t)
	if len(all) < 2 {
		t.Fatalf("%d stages, want a build stage and the final image", len(all))
	}
	final := all[len(all)-1]
	if from := final[0]; !strings.HasPrefix(from.args[0], "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %v, want gcr.io/distroless/static (no shell)", from.args)
	}
	seen := map[string]instruction{}
	for _, in := range final {
		seen[in.cmd] = in
		if in.cmd == "run" {
			t.Errorf("RUN %v in the final stage: the image has no shell to run it", in.args)
		}
	}
	if u := seen["user"]; len(u.args) != 1 || u.args[0] == "root" || strings.HasPrefix(u.args[0], "0") || !strings.ContainsAny(u.args[0][:1], "123456789") {
		t.Errorf("USER %v, want a numeric non-root user (distroless has no passwd entries to name)", u.args)
	}
	if hc := seen["healthcheck"]; !hc.json || strings.Join(hc.args, " ") != "/usr/local/bin/natsse healthcheck" {
		t.Errorf("HEALTHCHECK %v (exec form %v), want CMD [\"/usr/local/bin/natsse\", \"healthcheck\"]", hc.args, hc.json)
	}
	if ep := seen["entrypoint"]; !ep.json || strings.Join(ep.args, " ") != "/usr/local/bin/natsse" {
		t.Errorf("ENTRYPOINT %v, want [\"/usr/local/bin/natsse\"]", ep.args)
	}
	env := strings.Join(seen["env"].args, " ")
	for _, secret := range []string{"NATSSE_EMBEDDED_PASSWORD", "NATSSE_EMBEDDED_TOKEN", "NATSSE_JWT_SECRET"} {
		if strings.Contains(env, secret) {
			t.Errorf("ENV sets %s: no secret is baked into the image", secret)
		}
	}

	build := false
	for _, in := range all[0] {
		if in.cmd == "run" && strings.Contains(strings.Join(in.args, " "), "-X main.version=${VERSION} -X main.revision=${REVISION}") {
			build = true
		}
	}
	if !build {
		t.Error("the build stage does not stamp VERSION and REVISION into the binary (-ldflags -X)")
	}
}
