package deploy

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"go/types"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const chartDir = "helm/natsse"

// objects is one rendering of the chart, every document decoded into its type.
type objects struct {
	deployments []appsv1.Deployment
	services    []corev1.Service
	pdbs        []policyv1.PodDisruptionBudget
	ingresses   []networkingv1.Ingress
	monitors    []serviceMonitor
}

// serviceMonitor is the part of prometheus-operator's monitoring.coreos.com/v1
// ServiceMonitor that the chart sets (the operator's Go types pull in much of
// Kubernetes). Decoded strictly like the rest, so a field the chart adds fails
// the test until it is added here, with the operator's spelling checked.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port      string     `json:"port"`
			Path      string     `json:"path"`
			Scheme    string     `json:"scheme"`
			Interval  string     `json:"interval"`
			TLSConfig *tlsConfig `json:"tlsConfig"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// tlsConfig is prometheus-operator's TLSConfig of a ServiceMonitor endpoint
// (its SafeTLSConfig and the file fields).
type tlsConfig struct {
	CA                 *secretOrConfigMap        `json:"ca"`
	Cert               *secretOrConfigMap        `json:"cert"`
	KeySecret          *corev1.SecretKeySelector `json:"keySecret"`
	ServerName         string                    `json:"serverName"`
	InsecureSkipVerify bool                      `json:"insecureSkipVerify"`
	CAFile             string                    `json:"caFile"`
	CertFile           string                    `json:"certFile"`
	KeyFile            string                    `json:"keyFile"`
}

type secretOrConfigMap struct {
	Secret    *corev1.SecretKeySelector    `json:"secret"`
	ConfigMap *corev1.ConfigMapKeySelector `json:"configMap"`
}

// values is what the checks need to know of the values a rendering used
// (the chart's defaults with the case's overrides on top).
type values struct {
	BasePath  string
	Anonymous bool
	NATS      struct{ URL string }
	JWT       struct{ ExistingSecret, SecretKey, JWKSURL string }
	TLS       struct{ SecretName string }
	Ingress   struct{ Enabled bool }
	Metrics   struct {
		Port           int
		ServiceMonitor struct {
			Enabled   bool
			TLSConfig map[string]any
		}
	}
	PodDisruptionBudget struct{ Enabled bool }
	Resources           struct {
		Limits struct{ Memory any }
	}
	GoMemLimitPercent float64
	ExtraEnv          []struct{ Name, Value string }
}

// render renders the chart as `helm template natsse -n web -f <overrides>`
// would, without a cluster. Strict: a template that reads a value missing from
// values.yaml is an error.
func render(overrides string) (map[string]string, values, error) {
	var v values
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, v, err
	}
	over, err := chartutil.ReadValues([]byte(overrides))
	if err != nil {
		return nil, v, err
	}
	rv, err := chartutil.ToRenderValues(chrt, over, chartutil.ReleaseOptions{Name: "natsse", Namespace: "web", IsInstall: true}, nil)
	if err != nil {
		return nil, v, err
	}
	b, err := json.Marshal(rv["Values"])
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		return nil, v, err
	}
	files, err := engine.Engine{Strict: true}.Render(chrt, rv)
	return files, v, err
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode decodes every rendered document strictly (unknown or duplicate
// fields and case mismatches are errors, as kubectl's strict validation) into
// its Kubernetes type; a kind the test does not know is an error too.
func decode(t *testing.T, files map[string]string) objects {
	t.Helper()
	var objs objects
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !strings.HasSuffix(name, ".yaml") {
			t.Errorf("%s: rendered a file that is not YAML", name)
			continue
		}
		for i, doc := range docSeparator.Split(files[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			if err := decodeDoc(&objs, []byte(doc)); err != nil {
				t.Errorf("%s, document %d: %v\n%s", name, i, err, doc)
			}
		}
	}
	return objs
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func decodeDoc(objs *objects, doc []byte) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return err
	}
	var into any
	switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
	case "apps/v1 Deployment":
		objs.deployments = append(objs.deployments, appsv1.Deployment{})
		into = &objs.deployments[len(objs.deployments)-1]
	case "v1 Service":
		objs.services = append(objs.services, corev1.Service{})
		into = &objs.services[len(objs.services)-1]
	case "policy/v1 PodDisruptionBudget":
		objs.pdbs = append(objs.pdbs, policyv1.PodDisruptionBudget{})
		into = &objs.pdbs[len(objs.pdbs)-1]
	case "networking.k8s.io/v1 Ingress":
		objs.ingresses = append(objs.ingresses, networkingv1.Ingress{})
		into = &objs.ingresses[len(objs.ingresses)-1]
	case "monitoring.coreos.com/v1 ServiceMonitor":
		objs.monitors = append(objs.monitors, serviceMonitor{})
		into = &objs.monitors[len(objs.monitors)-1]
	default:
		return fmt.Errorf("unexpected object %q", gvk)
	}
	strictErrs, err := kjson.UnmarshalStrict(js, into)
	if err != nil {
		return err
	}
	if len(strictErrs) > 0 {
		return fmt.Errorf("strict decoding: %v", strictErrs)
	}
	return nil
}

// setting is one environment variable natsse reads.
type setting struct {
	goType, def string
}

// natsseSettings reads the env tags of natsse's config struct from its
// source, so the chart can only set variables natsse reads (the NATS_*
// connection settings, named as the nats CLI names them, are in the struct
// too).
func natsseSettings(t *testing.T) map[string]setting {
	t.Helper()
	const file = "../cmd/natsse/config.go"
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]setting{}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || ts.Name.Name != "config" {
			return true
		}
		for _, field := range ts.Type.(*ast.StructType).Fields.List {
			if field.Tag == nil {
				continue
			}
			tag, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				t.Fatal(err)
			}
			st := reflect.StructTag(tag)
			if name := st.Get("env"); name != "" {
				settings[name] = setting{goType: types.ExprString(field.Type), def: st.Get("envDefault")}
			}
		}
		return false
	})
	if len(settings) < 40 || settings["NATS_URL"].goType != "string" || settings["NATSSE_SHUTDOWN_TIMEOUT"].def == "" {
		t.Fatalf("read %d settings from %s; the config struct changed shape: %v", len(settings), file, settings)
	}
	return settings
}

// parseSize reads sizes as natsse's byteSize does (64MiB, 1GB, 1048576).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return n * mult, nil
}
