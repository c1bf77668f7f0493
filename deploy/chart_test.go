package deploy

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Measured in BENCHMARKS.md (S4, S5): natsse's RSS before any client, and per
// idle HTTP/1.1 stream. The chart's memory request must cover them at its
// stream limit, with the ring and the replay cache full.
const (
	measuredBaseRSS   = 16 << 20
	measuredStreamRSS = 9.5 * 1024
)

// renderCases are the values the chart must render into valid objects.
var renderCases = []struct{ name, values string }{
	{"defaults", ""},
	{"ingress", `
ingress: {enabled: true, host: sse.example.com, tlsSecretName: sse-example-com}
trustedProxies: 10.244.0.0/16`},
	{"serviceMonitor", `
metrics: {serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}}`},
	{"tls", `
tls: {secretName: natsse-tls}
ingress: {enabled: true}
metrics: {serviceMonitor: {enabled: true}}`},
	{"serviceMonitorTLSVerified", `
tls: {secretName: natsse-tls}
metrics: {port: 0, serviceMonitor: {enabled: true, tlsConfig: {serverName: sse.example.com, ca: {secret: {name: natsse-tls, key: ca.crt}}}}}`},
	{"serviceMonitorTLSMetricsPort", `
tls: {secretName: natsse-tls}
metrics: {serviceMonitor: {enabled: true, tlsConfig: {serverName: sse.example.com}}}`},
	{"goMemLimitPercent", `
resources: {limits: {memory: 1.5Gi}}
goMemLimitPercent: 80`},
	{"goMemLimitBytes", `
resources: {limits: {memory: 536870912}}`},
	{"goMemLimitDecimal", `
resources: {limits: {memory: 2G}}`},
	{"goMemLimitOff", `
goMemLimitPercent: 0`},
	{"goMemLimitNoLimit", `
resources: {limits: {memory: null}}`},
	{"goMemLimitInExtraEnv", `
extraEnv: [{name: GOMEMLIMIT, value: 300MiB}]`},
	{"basePath", `
basePath: /sse-gateway
ingress: {enabled: true}`},
	{"jwtSecret", `
jwt: {existingSecret: natsse-jwt, secretKey: hs256}`},
	{"jwks", `
anonymous: false
jwt: {jwksUrl: "https://id.example.com/.well-known/jwks.json", issuer: "https://id.example.com", audience: natsse}`},
	{"everything", `
nats: {url: "nats://a.nats.svc:4222,nats://b.nats.svc:4222"}
replicaCount: 4
basePath: /sse
anonymous: false
jwt: {existingSecret: natsse-jwt}
tls: {secretName: natsse-tls}
ingress: {enabled: true, annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 1m}}
metrics: {port: 0, serviceMonitor: {enabled: true}}
stream: {name: ORDERS, create: false, replicas: 1}
shutdownTimeoutSeconds: 60
maxStreams: 1000000
resources: {requests: {memory: 10Gi}, limits: {memory: 20Gi}}
podDisruptionBudget: {enabled: false}
extraEnv:
  - {name: NATSSE_LOG_LEVEL, value: debug}
  - {name: NATSSE_RING_BYTES, value: 256MiB}
  - name: NATS_PASSWORD
    valueFrom: {secretKeyRef: {name: nats-auth, key: password}}`},
}

func TestChartRenders(t *testing.T) {
	settings := natsseSettings(t)
	for _, c := range renderCases {
		t.Run(c.name, func(t *testing.T) {
			files, v, err := render(c.values)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			objs := decode(t, files)
			checkCounts(t, objs, v)
			if t.Failed() {
				return
			}
			d := objs.deployments[0]
			pod := d.Spec.Template
			checkNames(t, objs)
			checkSelects(t, "Deployment selector", d.Spec.Selector, pod.Labels)
			c := checkContainer(t, pod.Spec)
			env := checkEnv(t, settings, c, v)
			checkProbes(t, c, v)
			checkShutdown(t, pod.Spec, env, settings)
			checkSecurity(t, pod.Spec, c)
			need := checkMemory(t, c, env, settings)
			checkGoMemLimit(t, c, env, v, need)
			checkTLS(t, pod.Spec, c, env, v)
			svc := checkService(t, objs.services[0], pod, c)
			for _, pdb := range objs.pdbs {
				checkSelects(t, "PodDisruptionBudget selector", pdb.Spec.Selector, pod.Labels)
				if (pdb.Spec.MaxUnavailable == nil) == (pdb.Spec.MinAvailable == nil) {
					t.Errorf("PodDisruptionBudget: set one of maxUnavailable and minAvailable")
				}
			}
			for _, ing := range objs.ingresses {
				checkIngress(t, ing, svc, v)
			}
			for _, sm := range objs.monitors {
				checkServiceMonitor(t, sm, svc, v)
			}
		})
	}
}

// TestChartRefuses: values natsse would refuse to start with fail at render
// time, saying why.
func TestChartRefuses(t *testing.T) {
	for _, c := range []struct{ name, values, want string }{
		{"no JWT and not anonymous", "anonymous: false", "NATSSE_ANONYMOUS"},
		{"two JWT key sources", `jwt: {existingSecret: natsse-jwt, jwksUrl: "https://id.example.com/jwks"}`, "exactly one JWT key source"},
		{"JWT in extraEnv too", `{jwt: {existingSecret: natsse-jwt}, extraEnv: [{name: NATSSE_JWT_PUBLIC_KEY, value: /k.pem}]}`, "exactly one JWT key source"},
		{"base path ending in /", "basePath: /sse/", "NATSSE_BASE_PATH"},
		{"base path without leading /", "basePath: sse", "NATSSE_BASE_PATH"},
		{"no NATS URL", `nats: {url: ""}`, "nats.url"},
		{"goMemLimitPercent 100", "goMemLimitPercent: 100", "goMemLimitPercent"},
		{"memory limit GOMEMLIMIT cannot read", "resources: {limits: {memory: 512mb}}", "resources.limits.memory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := render(c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("render: got error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func checkCounts(t *testing.T, objs objects, v values) {
	t.Helper()
	count := func(kind string, got int, want bool) {
		if w := map[bool]int{false: 0, true: 1}[want]; got != w {
			t.Errorf("%d %s objects, want %d", got, kind, w)
		}
	}
	count("Deployment", len(objs.deployments), true)
	count("Service", len(objs.services), true)
	count("PodDisruptionBudget", len(objs.pdbs), v.PodDisruptionBudget.Enabled)
	count("Ingress", len(objs.ingresses), v.Ingress.Enabled)
	count("ServiceMonitor", len(objs.monitors), v.Metrics.ServiceMonitor.Enabled)
}

// checkNames: names and labels the API server would accept.
func checkNames(t *testing.T, objs objects) {
	t.Helper()
	metas := []metav1.ObjectMeta{objs.deployments[0].ObjectMeta, objs.deployments[0].Spec.Template.ObjectMeta, objs.services[0].ObjectMeta}
	for _, p := range objs.pdbs {
		metas = append(metas, p.ObjectMeta)
	}
	for _, i := range objs.ingresses {
		metas = append(metas, i.ObjectMeta)
	}
	for _, m := range objs.monitors {
		metas = append(metas, m.ObjectMeta)
	}
	for _, m := range metas {
		if m.Name != "" {
			for _, e := range validation.IsDNS1035Label(m.Name) {
				t.Errorf("name %q: %s", m.Name, e)
			}
		}
		for k, val := range m.Labels {
			for _, e := range append(validation.IsQualifiedName(k), validation.IsValidLabelValue(val)...) {
				t.Errorf("%s label %s=%q: %s", m.Name, k, val, e)
			}
		}
	}
}

func checkSelects(t *testing.T, what string, sel *metav1.LabelSelector, podLabels map[string]string) {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() || !s.Matches(labels.Set(podLabels)) {
		t.Errorf("%s %v (%v) does not select the pods, labelled %v", what, sel, err, podLabels)
	}
}

func checkContainer(t *testing.T, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("%d containers and %d init containers, want the natsse container alone", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	if c.Image == "" || strings.HasSuffix(c.Image, ":") {
		t.Errorf("image %q has no tag", c.Image)
	}
	return c
}

// checkEnv: every variable is a natsse setting, set once, with a value natsse
// parses; the values' settings arrive; the JWT secret only by reference.
func checkEnv(t *testing.T, settings map[string]setting, c corev1.Container, v values) map[string]corev1.EnvVar {
	t.Helper()
	if len(c.EnvFrom) > 0 {
		t.Errorf("envFrom sets variables this test cannot check")
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		s, ok := settings[e.Name]
		switch {
		case e.Name == "GOMEMLIMIT" && env[e.Name].Name == "":
			// The Go runtime's, not natsse's.
			if _, err := parseGoMemLimit(e.Value); err != nil {
				t.Errorf("env GOMEMLIMIT=%q: %v", e.Value, err)
			}
		case !ok:
			t.Errorf("env %s is not a natsse setting (not an env tag in cmd/natsse/config.go)", e.Name)
		case env[e.Name].Name != "":
			t.Errorf("env %s is set twice", e.Name)
		case e.ValueFrom == nil:
			if err := parseAs(s.goType, e.Value); err != nil {
				t.Errorf("env %s=%q: natsse would refuse it: %v", e.Name, e.Value, err)
			}
		}
		env[e.Name] = e
	}
	want := map[string]string{"NATS_URL": v.NATS.URL, "NATSSE_BASE_PATH": v.BasePath, "NATSSE_JWKS_URL": v.JWT.JWKSURL}
	if v.Anonymous && v.JWT.ExistingSecret == "" && v.JWT.JWKSURL == "" {
		want["NATSSE_ANONYMOUS"] = "true"
	} else {
		want["NATSSE_ANONYMOUS"] = ""
	}
	for name, w := range want {
		if got := env[name].Value; got != w {
			t.Errorf("env %s=%q, want %q", name, got, w)
		}
	}
	secret := env["NATSSE_JWT_SECRET"]
	switch {
	case v.JWT.ExistingSecret == "" && secret.Name != "":
		t.Errorf("NATSSE_JWT_SECRET set without jwt.existingSecret")
	case v.JWT.ExistingSecret == "":
	case secret.Value != "" || secret.ValueFrom == nil || secret.ValueFrom.SecretKeyRef == nil:
		t.Errorf("NATSSE_JWT_SECRET must come from the Secret by secretKeyRef, got %+v", secret)
	case secret.ValueFrom.SecretKeyRef.Name != v.JWT.ExistingSecret || secret.ValueFrom.SecretKeyRef.Key != v.JWT.SecretKey:
		t.Errorf("NATSSE_JWT_SECRET from %+v, want secret %q key %q", secret.ValueFrom.SecretKeyRef, v.JWT.ExistingSecret, v.JWT.SecretKey)
	}
	return env
}

// parseAs checks a value as natsse's config parsing would, by the Go type of
// its config field.
func parseAs(goType, val string) error {
	var err error
	switch goType {
	case "int":
		_, err = strconv.Atoi(val)
	case "bool", "*bool":
		_, err = strconv.ParseBool(val)
	case "time.Duration":
		_, err = time.ParseDuration(val)
	case "byteSize":
		_, err = parseSize(val)
	}
	return err
}

// value is a setting as natsse sees it: the env value, else its default.
func value(env map[string]corev1.EnvVar, settings map[string]setting, name string) string {
	if e, ok := env[name]; ok {
		return e.Value
	}
	return settings[name].def
}

// portOf is the port number of a listen address like :8080.
func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("listen address %q has no port", addr)
	}
	return int32(n)
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// checkProbes: readiness on /readyz, liveness on /healthz, under the base path,
// on the port natsse listens on, HTTPS when natsse serves TLS.
func checkProbes(t *testing.T, c corev1.Container, v values) {
	t.Helper()
	scheme := corev1.URISchemeHTTP
	if v.TLS.SecretName != "" {
		scheme = corev1.URISchemeHTTPS
	}
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, v.BasePath + "/readyz"}, {"livenessProbe", c.LivenessProbe, v.BasePath + "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: missing, or not an HTTP GET", p.what)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path || g.Scheme != scheme {
			t.Errorf("%s: %s %s, want %s %s", p.what, g.Scheme, g.Path, scheme, p.path)
		}
		if g.Port.String() != "http" {
			t.Errorf("%s: port %s, want the container port named http", p.what, g.Port.String())
		}
	}
	if _, ok := containerPort(c, "http"); !ok {
		t.Errorf("no container port named http")
	}
}

// checkShutdown: the kubelet waits longer than natsse's own drain.
func checkShutdown(t *testing.T, pod corev1.PodSpec, env map[string]corev1.EnvVar, settings map[string]setting) {
	t.Helper()
	timeout, err := time.ParseDuration(value(env, settings, "NATSSE_SHUTDOWN_TIMEOUT"))
	if err != nil {
		t.Fatal(err)
	}
	g := pod.TerminationGracePeriodSeconds
	if g == nil {
		t.Errorf("no terminationGracePeriodSeconds: the default 30 s is not tied to NATSSE_SHUTDOWN_TIMEOUT %s", timeout)
	} else if time.Duration(*g)*time.Second <= timeout {
		t.Errorf("terminationGracePeriodSeconds %d is not above NATSSE_SHUTDOWN_TIMEOUT %s", *g, timeout)
	}
}

func checkSecurity(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if sc == nil {
		t.Fatal("container has no securityContext")
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = psc.RunAsNonRoot
	}
	uid := sc.RunAsUser
	if uid == nil {
		uid = psc.RunAsUser
	}
	if nonRoot == nil || !*nonRoot || uid == nil || *uid == 0 {
		t.Errorf("not non-root: runAsNonRoot %v, runAsUser %v", nonRoot, uid)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("root filesystem is not read-only")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("privilege escalation is not off")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("privileged")
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Add) > 0 || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("capabilities %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}
}

// checkMemory: requests and limits are set, and the memory request covers
// what natsse was measured to use at its stream limit with the ring and the
// replay cache full (need, returned).
func checkMemory(t *testing.T, c corev1.Container, env map[string]corev1.EnvVar, settings map[string]setting) int64 {
	t.Helper()
	r := c.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := r.Requests[name], r.Limits[name]
		if name == corev1.ResourceMemory && lim.IsZero() && !req.IsZero() {
			continue // a case without a memory limit
		}
		if req.IsZero() || lim.IsZero() || lim.Cmp(req) < 0 {
			t.Errorf("%s: request %s, limit %s: want both, limit >= request", name, req.String(), lim.String())
		}
	}
	streams, err := strconv.Atoi(value(env, settings, "NATSSE_MAX_STREAMS"))
	if err != nil || streams <= 0 {
		t.Fatalf("NATSSE_MAX_STREAMS=%q: set a limit, else it follows the container's open-file limit and memory cannot be sized", value(env, settings, "NATSSE_MAX_STREAMS"))
	}
	need := int64(measuredBaseRSS + float64(streams)*measuredStreamRSS)
	for _, name := range []string{"NATSSE_RING_BYTES", "NATSSE_REPLAY_CACHE_BYTES"} {
		n, err := parseSize(value(env, settings, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		need += n
	}
	if req := r.Requests[corev1.ResourceMemory]; req.Value() < need {
		t.Errorf("memory request %s is below the measured need at %d streams, ring and replay cache full: %s",
			req.String(), streams, resource.NewQuantity(need, resource.BinarySI).String())
	}
	return need
}

// checkGoMemLimit: GOMEMLIMIT is goMemLimitPercent of the container's memory
// limit (as Kubernetes reads the quantity), in whole MiB, or what extraEnv
// says; below the limit, so that Go collects before the kernel kills; above
// the measured need, so that it does not collect all the time.
func checkGoMemLimit(t *testing.T, c corev1.Container, env map[string]corev1.EnvVar, v values, need int64) {
	t.Helper()
	limit := c.Resources.Limits[corev1.ResourceMemory]
	want := ""
	for _, e := range v.ExtraEnv {
		if e.Name == "GOMEMLIMIT" {
			want = e.Value
		}
	}
	if want == "" && !limit.IsZero() && v.GoMemLimitPercent > 0 {
		want = fmt.Sprintf("%dMiB", int64(float64(limit.Value())*v.GoMemLimitPercent/100)>>20)
	}
	got := env["GOMEMLIMIT"]
	if got.Value != want || got.ValueFrom != nil {
		t.Fatalf("GOMEMLIMIT=%q (%+v), want %q: goMemLimitPercent %v of the memory limit %s", got.Value, got.ValueFrom, want, v.GoMemLimitPercent, limit.String())
	}
	if want == "" {
		return
	}
	n, err := parseGoMemLimit(want)
	if err != nil {
		t.Fatalf("GOMEMLIMIT=%q: %v", want, err)
	}
	if !limit.IsZero() && n >= limit.Value() {
		t.Errorf("GOMEMLIMIT=%s is not below the memory limit %s", want, limit.String())
	}
	if n < need {
		t.Errorf("GOMEMLIMIT=%s is below the measured need %s: the collector would run all the time", want, resource.NewQuantity(need, resource.BinarySI).String())
	}
}

// parseGoMemLimit reads GOMEMLIMIT as the Go runtime does: bytes, with an
// optional B, KiB, MiB, GiB or TiB.
func parseGoMemLimit(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a GOMEMLIMIT the Go runtime reads", s)
	}
	return n * mult, nil
}

// checkTLS: the certificate and key natsse reads are in a mounted Secret.
func checkTLS(t *testing.T, pod corev1.PodSpec, c corev1.Container, env map[string]corev1.EnvVar, v values) {
	t.Helper()
	for _, name := range []string{"NATSSE_TLS_CERT", "NATSSE_TLS_KEY"} {
		path := env[name].Value
		if (path != "") != (v.TLS.SecretName != "") {
			t.Errorf("%s=%q with tls.secretName %q", name, path, v.TLS.SecretName)
			continue
		}
		if path == "" {
			continue
		}
		if !fromSecret(pod, c, path, v.TLS.SecretName) {
			t.Errorf("%s=%s is not in a mount of the Secret %s", name, path, v.TLS.SecretName)
		}
	}
}

func fromSecret(pod corev1.PodSpec, c corev1.Container, path, secret string) bool {
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			continue
		}
		for _, vol := range pod.Volumes {
			if vol.Name == m.Name && vol.Secret != nil && vol.Secret.SecretName == secret {
				return true
			}
		}
	}
	return false
}

// checkService: it selects the pods and reaches the ports natsse listens on.
func checkService(t *testing.T, svc corev1.Service, pod corev1.PodTemplateSpec, c corev1.Container) corev1.Service {
	t.Helper()
	checkSelects(t, "Service selector", &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pod.Labels)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	listens := map[string]string{"http": env["NATSSE_HTTP_ADDR"], "metrics": env["NATSSE_METRICS_ADDR"]}
	for name, addr := range listens {
		p, ok := containerPort(c, name)
		switch {
		case ok && addr == "":
			t.Errorf("container port %s, but natsse does not listen on it", name)
		case addr != "" && p != portOf(t, addr):
			t.Errorf("container port %s is %d, natsse listens on %s", name, p, addr)
		}
	}
	for _, sp := range svc.Spec.Ports {
		if _, ok := containerPort(c, sp.TargetPort.String()); !ok || sp.Name != sp.TargetPort.String() {
			t.Errorf("Service port %s targets %s, not the container port of that name", sp.Name, sp.TargetPort.String())
		}
	}
	return svc
}

func servicePort(svc corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name {
			return true
		}
	}
	return false
}

// checkIngress: ingress-nginx neither buffers the stream nor cuts it while
// idle; the path is the base path; the backend is the Service's http port,
// over HTTPS when natsse serves TLS.
func checkIngress(t *testing.T, ing networkingv1.Ingress, svc corev1.Service, v values) {
	t.Helper()
	a := ing.Annotations
	if a["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
		t.Errorf("ingress-nginx proxy-buffering is %q, want off", a["nginx.ingress.kubernetes.io/proxy-buffering"])
	}
	for _, k := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		if s, err := strconv.Atoi(a["nginx.ingress.kubernetes.io/"+k]); err != nil || s < 3600 {
			t.Errorf("ingress-nginx %s is %q, want an hour or more", k, a["nginx.ingress.kubernetes.io/"+k])
		}
	}
	if got, want := a["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS", v.TLS.SecretName != ""; got != want {
		t.Errorf("ingress-nginx backend-protocol HTTPS: %v, want %v", got, want)
	}
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName == "" {
		t.Errorf("no ingressClassName")
	}
	want := v.BasePath
	if want == "" {
		want = "/"
	}
	n := 0
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			n++
			b := p.Backend.Service
			if p.Path != want || p.PathType == nil || *p.PathType != networkingv1.PathTypePrefix {
				t.Errorf("Ingress path %q (%v), want %q Prefix", p.Path, p.PathType, want)
			}
			if b == nil || b.Name != svc.Name || b.Port.Name != "http" || !servicePort(svc, "http") {
				t.Errorf("Ingress backend %+v, want Service %s port http", b, svc.Name)
			}
		}
	}
	if n == 0 {
		t.Errorf("Ingress has no paths")
	}
}

// checkServiceMonitor: it selects the Service and scrapes where natsse serves
// /metrics.
func checkServiceMonitor(t *testing.T, sm serviceMonitor, svc corev1.Service, v values) {
	t.Helper()
	checkSelects(t, "ServiceMonitor selector", &sm.Spec.Selector, svc.Labels)
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%d ServiceMonitor endpoints, want 1", len(sm.Spec.Endpoints))
	}
	e := sm.Spec.Endpoints[0]
	want := struct{ Port, Path, Scheme string }{"metrics", "/metrics", "http"}
	if v.Metrics.Port == 0 {
		want.Port, want.Path = "http", v.BasePath+"/metrics"
		if v.TLS.SecretName != "" {
			want.Scheme = "https"
		}
	}
	if got := (struct{ Port, Path, Scheme string }{e.Port, e.Path, e.Scheme}); got != want || !servicePort(svc, e.Port) {
		t.Errorf("ServiceMonitor scrapes %+v, want %+v on a Service port", got, want)
	}
	// Over HTTPS Prometheus needs to know how to check natsse's certificate:
	// as the values say, else not at all (it names the public host).
	tc := e.TLSConfig
	switch {
	case want.Scheme == "http" && tc != nil:
		t.Errorf("ServiceMonitor has a tlsConfig for a plain HTTP scrape: %+v", tc)
	case want.Scheme == "http":
	case tc == nil:
		t.Errorf("ServiceMonitor scrapes https without a tlsConfig: Prometheus would check natsse's certificate against its own CAs and the pod's address")
	case len(v.Metrics.ServiceMonitor.TLSConfig) == 0:
		if !tc.InsecureSkipVerify || tc.CA != nil || tc.ServerName != "" {
			t.Errorf("ServiceMonitor tlsConfig %+v, want insecureSkipVerify alone when the values give none", tc)
		}
	default:
		vc := v.Metrics.ServiceMonitor.TLSConfig
		if tc.InsecureSkipVerify || tc.ServerName != vc["serverName"] || (vc["ca"] == nil) != (tc.CA == nil) {
			t.Errorf("ServiceMonitor tlsConfig %+v, want the values' %v", tc, vc)
		}
		if tc.CA != nil && (tc.CA.Secret == nil || tc.CA.Secret.Name == "" || tc.CA.Secret.Key == "") {
			t.Errorf("ServiceMonitor tlsConfig ca %+v: want a Secret's key", tc.CA)
		}
	}
	if _, err := time.ParseDuration(e.Interval); err != nil {
		t.Errorf("ServiceMonitor interval %q: %v", e.Interval, err)
	}
}
