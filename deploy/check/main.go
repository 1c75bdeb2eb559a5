// Command check validates posfleet's deployment files offline, where no
// container engine or cluster is at hand:
//
//   - Kubernetes manifests (multi-document YAML, as `kubectl kustomize`
//     renders them) are decoded strictly into the Kubernetes API types, so an
//     unknown or misspelt field, a wrong type or an unknown kind fails; then
//     the references inside the set are checked (selectors and labels,
//     Services, ConfigMaps, volumes, probe ports).
//   - The compose file is loaded and validated by compose-go, the library
//     behind `docker compose config`, against the Compose specification.
//   - The Grafana dashboard is checked for the measurements it queries.
//   - A binary is checked to be static (the Dockerfile's runtime image has
//     no libc).
//
// It is a module of its own so that posfleet itself does not depend on the
// Kubernetes and Compose libraries.
package main

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

func main() {
	k8s := flag.String("k8s", "", "Kubernetes manifests: a multi-document YAML file (kubectl kustomize output) or a directory of them")
	compose := flag.String("compose", "", "compose file")
	dashboard := flag.String("grafana", "", "Grafana dashboard JSON")
	var static multi
	flag.Var(&static, "static", "binary that must be statically linked (repeatable)")
	flag.Parse()
	var errs []error
	if *k8s != "" {
		errs = append(errs, checkKubernetes(*k8s))
	}
	if *compose != "" {
		errs = append(errs, checkCompose(*compose))
	}
	if *dashboard != "" {
		errs = append(errs, checkDashboard(*dashboard))
	}
	for _, s := range static {
		errs = append(errs, checkStatic(s))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// readManifests reads one multi-document file, or every *.yaml of a
// directory but kustomization.yaml.
func readManifests(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return os.ReadFile(path)
	}
	files, err := filepath.Glob(filepath.Join(path, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var all bytes.Buffer
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		all.WriteString("\n---\n")
		all.Write(b)
	}
	return all.Bytes(), nil
}

func checkKubernetes(path string) error {
	b, err := readManifests(path)
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []runtime.Object
	var errs []error
	for i := 1; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("k8s: document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := dec.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("k8s: document %d: %w", i, err))
			continue
		}
		fmt.Printf("k8s: %s/%s ok\n", gvk.Kind, name(obj))
		objs = append(objs, obj)
	}
	errs = append(errs, references(objs)...)
	if len(objs) == 0 {
		errs = append(errs, errors.New("k8s: no objects"))
	}
	return errors.Join(errs...)
}

func name(obj runtime.Object) string {
	if m, ok := obj.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return "?"
}

// references checks what the API server would accept but the cluster would
// not run: a selector that matches no pod template, a Service or ConfigMap
// that is not there, a volume mount of no volume, a probe on no port.
func references(objs []runtime.Object) []error {
	services, configMaps := map[string]bool{}, map[string]bool{}
	var templates []map[string]string
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Service:
			services[o.Name] = true
		case *corev1.ConfigMap:
			configMaps[o.Name] = true
		}
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf("k8s: "+format, args...)) }
	checkPod := func(owner string, sel map[string]string, t corev1.PodTemplateSpec, claims []corev1.PersistentVolumeClaim) {
		for k, v := range sel {
			if t.Labels[k] != v {
				fail("%s: selector %s=%s does not match the pod template's labels", owner, k, v)
			}
		}
		templates = append(templates, t.Labels)
		vols := map[string]bool{}
		for _, v := range t.Spec.Volumes {
			vols[v.Name] = true
			if v.ConfigMap != nil && !configMaps[v.ConfigMap.Name] {
				fail("%s: volume %s: ConfigMap %s is not in the manifests", owner, v.Name, v.ConfigMap.Name)
			}
		}
		for _, c := range claims {
			vols[c.Name] = true
		}
		if t.Spec.SecurityContext == nil || t.Spec.SecurityContext.RunAsNonRoot == nil || !*t.Spec.SecurityContext.RunAsNonRoot {
			fail("%s: pod does not set runAsNonRoot", owner)
		}
		for _, c := range append(append([]corev1.Container{}, t.Spec.InitContainers...), t.Spec.Containers...) {
			if c.Image == "" {
				fail("%s/%s: no image", owner, c.Name)
			}
			for _, m := range c.VolumeMounts {
				if !vols[m.Name] {
					fail("%s/%s: mounts volume %s, which the pod does not have", owner, c.Name, m.Name)
				}
			}
			ports := map[string]bool{}
			for _, p := range c.Ports {
				ports[p.Name] = true
			}
			for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
				if p == nil {
					continue
				}
				if p.HTTPGet != nil && p.HTTPGet.Port.StrVal != "" && !ports[p.HTTPGet.Port.StrVal] {
					fail("%s/%s: probe on port %q, which the container does not name", owner, c.Name, p.HTTPGet.Port.StrVal)
				}
				if p.TCPSocket != nil && p.TCPSocket.Port.StrVal != "" && !ports[p.TCPSocket.Port.StrVal] {
					fail("%s/%s: probe on port %q, which the container does not name", owner, c.Name, p.TCPSocket.Port.StrVal)
				}
			}
			if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
				fail("%s/%s: allowPrivilegeEscalation is not false", owner, c.Name)
			}
		}
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.StatefulSet:
			if !services[o.Spec.ServiceName] {
				fail("StatefulSet %s: serviceName %s is not in the manifests", o.Name, o.Spec.ServiceName)
			}
			checkPod("StatefulSet "+o.Name, o.Spec.Selector.MatchLabels, o.Spec.Template, o.Spec.VolumeClaimTemplates)
		case *appsv1.Deployment:
			checkPod("Deployment "+o.Name, o.Spec.Selector.MatchLabels, o.Spec.Template, nil)
		case *batchv1.Job:
			checkPod("Job "+o.Name, nil, o.Spec.Template, nil)
		}
	}
	matches := func(sel map[string]string) bool {
		for _, labels := range templates {
			ok := true
			for k, v := range sel {
				ok = ok && labels[k] == v
			}
			if ok {
				return true
			}
		}
		return false
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Service:
			if !matches(o.Spec.Selector) {
				fail("Service %s: selector matches no pod template", o.Name)
			}
		case *policyv1.PodDisruptionBudget:
			if !matches(o.Spec.Selector.MatchLabels) {
				fail("PodDisruptionBudget %s: selector matches no pod template", o.Name)
			}
		}
	}
	return errs
}

func checkCompose(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	opts, err := cli.NewProjectOptions([]string{abs}, cli.WithWorkingDirectory(filepath.Dir(abs)), cli.WithOsEnv, cli.WithName("posfleet"))
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		return fmt.Errorf("compose: %w", err)
	}
	for _, s := range p.Services {
		fmt.Printf("compose: service %s ok\n", s.Name)
	}
	return nil
}

// measurements are those of README.md "Measurement schema".
var measurements = map[string]bool{
	"heartbeat": true, "fault": true, "firmware": true, "txn": true, "status": true,
	"ack": true, "rejected": true, "security": true,
}

var measurementRef = regexp.MustCompile(`_measurement\s*==\s*"([^"]+)"`)

func checkDashboard(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource any    `json:"datasource"`
			Targets    []struct {
				Query string `json:"query"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&d); err != nil {
		return fmt.Errorf("grafana: %w", err)
	}
	var errs []error
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		errs = append(errs, errors.New("grafana: want a title, a uid and panels"))
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || len(p.Targets) == 0 {
			errs = append(errs, fmt.Errorf("grafana: panel %q: no datasource or no query", p.Title))
		}
		for _, t := range p.Targets {
			refs := measurementRef.FindAllStringSubmatch(t.Query, -1)
			if len(refs) == 0 || !strings.Contains(t.Query, "v.timeRangeStart") {
				errs = append(errs, fmt.Errorf("grafana: panel %q: query names no measurement or ignores the time range", p.Title))
			}
			for _, m := range refs {
				if !measurements[m[1]] {
					errs = append(errs, fmt.Errorf("grafana: panel %q: measurement %q is not posfleet's", p.Title, m[1]))
				}
			}
		}
	}
	if len(errs) == 0 {
		fmt.Printf("grafana: %d panels ok\n", len(d.Panels))
	}
	return errors.Join(errs...)
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("static: %s has a dynamic loader: it needs libc", path)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		return fmt.Errorf("static: %s links %v", path, libs)
	}
	fmt.Printf("static: %s ok\n", path)
	return nil
}
