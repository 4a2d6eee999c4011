package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const k8sDir = "kubernetes"

// kustomization is the part of kustomize's file format these manifests
// use; decoding one strictly fails on anything else.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels,omitempty"`
	Resources []string `json:"resources"`
	Patches   []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewTag  string `json:"newTag"`
		NewName string `json:"newName,omitempty"`
	} `json:"images,omitempty"`
}

// decoder decodes manifests strictly (an unknown or duplicated field is an
// error) into the typed objects of k8s.io/api.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// decodeAll decodes every YAML document of data.
func decodeAll(t *testing.T, dec runtime.Decoder, name string, data []byte) []runtime.Object {
	t.Helper()
	var out []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, obj)
	}
}

// readKustomization strictly decodes dir's kustomization.yaml.
func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("%s/kustomization.yaml: %s %s", dir, k.APIVersion, k.Kind)
	}
	return k
}

// loadBase decodes the base's resources, applying its namespace, common
// labels and image tag as kustomize does.
func loadBase(t *testing.T, dec runtime.Decoder) []runtime.Object {
	t.Helper()
	dir := filepath.Join(k8sDir, "base")
	k := readKustomization(t, dir)
	var objs []runtime.Object
	for _, r := range k.Resources {
		b, err := os.ReadFile(filepath.Join(dir, r))
		if err != nil {
			t.Fatalf("base resource %s: %v", r, err)
		}
		objs = append(objs, decodeAll(t, dec, r, b)...)
	}
	for _, o := range objs {
		m := meta(o)
		if _, isNS := o.(*corev1.Namespace); !isNS {
			m.Namespace = k.Namespace
		}
		for _, l := range k.Labels {
			if m.Labels == nil {
				m.Labels = map[string]string{}
			}
			maps.Copy(m.Labels, l.Pairs)
		}
		if spec := podSpec(o); spec != nil {
			for i := range spec.Containers {
				for _, img := range k.Images {
					if spec.Containers[i].Image == img.Name {
						spec.Containers[i].Image = img.Name + ":" + img.NewTag
					}
				}
			}
		}
	}
	return objs
}

// loadHA is the HA overlay applied to the base: its extra resources, and
// its patches, which may set only replicas and containers' args (checked
// here), applied as a strategic merge would.
func loadHA(t *testing.T, dec runtime.Decoder) []runtime.Object {
	t.Helper()
	objs := loadBase(t, dec)
	dir := filepath.Join(k8sDir, "overlays", "ha")
	k := readKustomization(t, dir)
	for _, r := range k.Resources {
		if strings.HasPrefix(r, "../") {
			if filepath.Clean(filepath.Join(dir, r)) != filepath.Join(k8sDir, "base") {
				t.Fatalf("ha: resource %s is not the base", r)
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, r))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeAll(t, dec, r, b)...)
	}
	for _, o := range objs {
		if _, isNS := o.(*corev1.Namespace); !isNS && k.Namespace != "" {
			meta(o).Namespace = k.Namespace
		}
	}
	for _, p := range k.Patches {
		b, err := os.ReadFile(filepath.Join(dir, p.Path))
		if err != nil {
			t.Fatal(err)
		}
		for _, patch := range decodeAll(t, dec, p.Path, b) {
			target := find(objs, patch)
			if target == nil {
				t.Fatalf("ha patch %s: no %T %s in the base", p.Path, patch, meta(patch).Name)
			}
			applyPatch(t, p.Path, target, patch)
		}
	}
	return objs
}

// applyPatch sets target's replicas and containers' args from patch, and
// fails if patch sets anything else.
func applyPatch(t *testing.T, name string, target, patch runtime.Object) {
	t.Helper()
	pspec, tspec := podSpec(patch), podSpec(target)
	rest := patch.DeepCopyObject()
	switch p := rest.(type) {
	case *appsv1.StatefulSet:
		target.(*appsv1.StatefulSet).Spec.Replicas = p.Spec.Replicas
		p.Spec.Replicas = nil
	case *appsv1.Deployment:
		target.(*appsv1.Deployment).Spec.Replicas = p.Spec.Replicas
		p.Spec.Replicas = nil
	default:
		t.Fatalf("ha patch %s patches a %T", name, patch)
	}
	for _, pc := range pspec.Containers {
		i := slices.IndexFunc(tspec.Containers, func(c corev1.Container) bool { return c.Name == pc.Name })
		if i < 0 {
			t.Fatalf("ha patch %s: no container %s in the base", name, pc.Name)
		}
		tspec.Containers[i].Args = pc.Args
	}
	rspec := podSpec(rest)
	for i := range rspec.Containers {
		rspec.Containers[i] = corev1.Container{Name: rspec.Containers[i].Name}
	}
	empty := rest.DeepCopyObject()
	m := meta(empty)
	*m = metav1.ObjectMeta{Name: m.Name}
	*podSpec(empty) = corev1.PodSpec{Containers: rspec.Containers}
	if !equality.Semantic.DeepEqual(rest, empty) {
		t.Fatalf("ha patch %s sets more than replicas and args; extend applyPatch", name)
	}
}

func find(objs []runtime.Object, like runtime.Object) runtime.Object {
	for _, o := range objs {
		if fmt.Sprintf("%T", o) == fmt.Sprintf("%T", like) && meta(o).Name == meta(like).Name {
			return o
		}
	}
	return nil
}

func meta(o runtime.Object) *metav1.ObjectMeta {
	switch v := o.(type) {
	case *corev1.Namespace:
		return &v.ObjectMeta
	case *corev1.ConfigMap:
		return &v.ObjectMeta
	case *corev1.Service:
		return &v.ObjectMeta
	case *appsv1.StatefulSet:
		return &v.ObjectMeta
	case *appsv1.Deployment:
		return &v.ObjectMeta
	case *networkingv1.NetworkPolicy:
		return &v.ObjectMeta
	case *policyv1.PodDisruptionBudget:
		return &v.ObjectMeta
	}
	panic(fmt.Sprintf("unexpected %T", o))
}

// workload is a StatefulSet or Deployment, seen through what they share.
type workload struct {
	kind, name string
	replicas   int32
	selector   *metav1.LabelSelector
	template   *corev1.PodTemplateSpec
	claims     []corev1.PersistentVolumeClaim
	service    string // StatefulSet serviceName
}

func podSpec(o runtime.Object) *corev1.PodSpec {
	if w := asWorkload(o); w != nil {
		return &w.template.Spec
	}
	return nil
}

func asWorkload(o runtime.Object) *workload {
	switch v := o.(type) {
	case *appsv1.StatefulSet:
		return &workload{"StatefulSet", v.Name, ptrOr(v.Spec.Replicas, 1), v.Spec.Selector, &v.Spec.Template, v.Spec.VolumeClaimTemplates, v.Spec.ServiceName}
	case *appsv1.Deployment:
		return &workload{"Deployment", v.Name, ptrOr(v.Spec.Replicas, 1), v.Spec.Selector, &v.Spec.Template, nil, ""}
	}
	return nil
}

func ptrOr(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// weirFlags is `weir flags`: "COMMAND --NAME" for every flag of the CLI.
func weirFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(weirBinary(t), "flags").Output()
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if !strings.HasSuffix(l, " deprecated") {
			flags[l] = true
		}
	}
	return flags
}

// servedPaths are the HTTP paths each daemon serves on its health-checked
// listener: the coordinator's and worker's --http, etcd's --client.
var servedPaths = map[string][]string{
	"coordinator": {"/healthz", "/metrics"},
	"worker":      {"/healthz", "/metrics"},
	"etcd":        {"/health"},
}

// listenFlags are the flags whose port a daemon listens on: each must be a
// container port, and each container port one of them.
var listenFlags = map[string][]string{
	"etcd":        {"--client", "--peer"},
	"coordinator": {"--api", "--http"},
	"worker":      {"--http"},
}

// container is what the checks know of one weir container.
type container struct {
	w     *workload
	c     *corev1.Container
	role  string
	flags map[string]string // --name: value
	ports map[string]int32  // port name: number
	flag  map[int32]string  // port number: the flag that listens on it
	env   map[string]string // literal env values
}

func parseContainer(t *testing.T, w *workload, c *corev1.Container, cliFlags map[string]bool) *container {
	t.Helper()
	where := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
	if len(c.Command) != 0 || len(c.Args) == 0 {
		t.Fatalf("%s: the image's entrypoint is weir; give the role and flags in args", where)
	}
	ct := &container{w: w, c: c, role: c.Args[0], flags: map[string]string{}, ports: map[string]int32{}, flag: map[int32]string{}, env: map[string]string{}}
	for _, a := range c.Args[1:] {
		name, val, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(name, "--") {
			t.Fatalf("%s: argument %q is not --flag=value", where, a)
		}
		if !cliFlags[ct.role+" "+name] {
			t.Errorf("%s: weir %s has no flag %s", where, ct.role, name)
		}
		ct.flags[name] = val
	}
	for _, p := range c.Ports {
		ct.ports[p.Name] = p.ContainerPort
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			ct.env[e.Name] = e.Value
		}
	}
	for _, f := range listenFlags[ct.role] {
		v, ok := ct.flags[f]
		if !ok {
			t.Errorf("%s: no %s", where, f)
			continue
		}
		_, port, err := net.SplitHostPort(v)
		n, err2 := strconv.Atoi(port)
		if err != nil || err2 != nil {
			t.Errorf("%s: %s=%s is not host:port", where, f, v)
			continue
		}
		if !slices.Contains(slices.Collect(maps.Values(ct.ports)), int32(n)) {
			t.Errorf("%s: %s listens on %d, which is no container port (%v)", where, f, n, ct.ports)
		}
		ct.flag[int32(n)] = f
	}
	for name, n := range ct.ports {
		if ct.flag[n] == "" {
			t.Errorf("%s: container port %s (%d) is no daemon flag's port", where, name, n)
		}
	}
	return ct
}

// resolvePort turns a probe's or Service's port (a name or a number) into
// a container port number, 0 if the container has none such.
func (ct *container) resolvePort(p intstr.IntOrString) int32 {
	if p.Type == intstr.String {
		return ct.ports[p.StrVal]
	}
	if slices.Contains(slices.Collect(maps.Values(ct.ports)), p.IntVal) {
		return p.IntVal
	}
	return 0
}

// checkHTTP checks that a request to port and path reaches a listener that
// serves path, over TLS when the daemon has it.
func (ct *container) checkHTTP(t *testing.T, what string, port int32, path string, https bool) {
	t.Helper()
	where := fmt.Sprintf("%s %s container %s: %s", ct.w.kind, ct.w.name, ct.c.Name, what)
	f := ct.flag[port]
	healthListener := map[string]string{"coordinator": "--http", "worker": "--http", "etcd": "--client"}[ct.role]
	switch {
	case port == 0:
		t.Errorf("%s: no such container port", where)
	case f == "":
		t.Errorf("%s: no daemon flag listens on port %d", where, port)
	case f != healthListener:
		t.Errorf("%s: port %d is %s's, which serves no HTTP paths", where, port, f)
	case !slices.Contains(servedPaths[ct.role], path):
		t.Errorf("%s: weir %s serves no %s (it serves %v)", where, ct.role, path, servedPaths[ct.role])
	}
	// The worker's --http is plaintext even with TLS on; the others are
	// TLS listeners when the daemon has a certificate.
	tlsOn := ct.env["WEIR_TLS_CA"] != "" && ct.role != "worker"
	if https != tlsOn {
		t.Errorf("%s: https=%v, but the listener's TLS is %v", where, https, tlsOn)
	}
}

// checkProbe checks a readiness or liveness probe.
func (ct *container) checkProbe(t *testing.T, what string, p *corev1.Probe) {
	t.Helper()
	where := fmt.Sprintf("%s %s container %s: %s", ct.w.kind, ct.w.name, ct.c.Name, what)
	switch {
	case p == nil:
		t.Errorf("%s: missing", where)
	case p.HTTPGet != nil:
		ct.checkHTTP(t, what, ct.resolvePort(p.HTTPGet.Port), p.HTTPGet.Path, p.HTTPGet.Scheme == corev1.URISchemeHTTPS)
	case p.Exec != nil:
		if !slices.Equal(p.Exec.Command, []string{"weir", "healthcheck"}) {
			t.Errorf("%s: exec %v, want weir healthcheck", where, p.Exec.Command)
			return
		}
		u := ct.env["WEIR_HEALTHCHECK_URL"]
		scheme, rest, ok := strings.Cut(u, "://")
		host, path, _ := strings.Cut(rest, "/")
		_, port, err := net.SplitHostPort(host)
		n, _ := strconv.Atoi(port)
		if !ok || err != nil {
			t.Errorf("%s: WEIR_HEALTHCHECK_URL %q is not a URL", where, u)
			return
		}
		ct.checkHTTP(t, what+" ("+u+")", ct.resolvePort(intstr.FromInt32(int32(n))), "/"+path, scheme == "https")
	default:
		t.Errorf("%s: neither httpGet nor exec", where)
	}
}

// checkLayout checks the cross references of one rendered layout.
func checkLayout(t *testing.T, objs []runtime.Object, cliFlags map[string]bool) {
	t.Helper()
	var (
		workloads []*workload
		conts     []*container
		services  = map[string]*corev1.Service{}
		configs   = map[string]*corev1.ConfigMap{}
	)
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.Service:
			services[v.Name] = v
		case *corev1.ConfigMap:
			configs[v.Name] = v
		}
		if w := asWorkload(o); w != nil {
			workloads = append(workloads, w)
		}
	}
	podsOf := func(sel labels.Selector) []*container {
		var out []*container
		for _, c := range conts {
			if sel.Matches(labels.Set(c.w.template.Labels)) {
				out = append(out, c)
			}
		}
		return out
	}
	for _, w := range workloads {
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.template.Labels)) {
			t.Errorf("%s %s: selector %v does not select its own pods %v", w.kind, w.name, w.selector, w.template.Labels)
		}
		spec := &w.template.Spec
		if s := spec.SecurityContext; s == nil || s.RunAsNonRoot == nil || !*s.RunAsNonRoot || s.RunAsUser == nil || *s.RunAsUser != 65532 {
			t.Errorf("%s %s: pod must run as non-root 65532", w.kind, w.name)
		}
		if w.service != "" {
			if s := services[w.service]; s == nil || s.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("%s %s: serviceName %s is no headless Service", w.kind, w.name, w.service)
			}
		}
		if spec.Subdomain != "" {
			if s := services[spec.Subdomain]; s == nil || s.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("%s %s: subdomain %s is no headless Service", w.kind, w.name, spec.Subdomain)
			}
		}
		vols := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
		}
		for _, pvc := range w.claims {
			vols[pvc.Name] = corev1.Volume{Name: pvc.Name}
		}
		for i := range spec.Containers {
			c := &spec.Containers[i]
			where := fmt.Sprintf("%s %s container %s", w.kind, w.name, c.Name)
			sc := c.SecurityContext
			if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil ||
				!*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("%s: securityContext must forbid privilege escalation, make the root read-only and drop ALL", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: needs cpu and memory requests and a memory limit", where)
			}
			for _, m := range c.VolumeMounts {
				if _, ok := vols[m.Name]; !ok {
					t.Errorf("%s: mounts %s, which is no volume", where, m.Name)
				}
			}
			for _, e := range c.Env {
				if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil {
					if cm := configs[r.ConfigMapKeyRef.Name]; cm == nil || cm.Data[r.ConfigMapKeyRef.Key] == "" {
						t.Errorf("%s: env %s reads %s/%s, which is not in the manifests", where, e.Name, r.ConfigMapKeyRef.Name, r.ConfigMapKeyRef.Key)
					}
				}
			}
			for _, v := range spec.Volumes {
				if v.Secret != nil && v.Secret.SecretName != "weir-certs" {
					t.Errorf("%s: mounts Secret %s; docs/deploy.md documents only weir-certs", where, v.Secret.SecretName)
				}
			}
			ct := parseContainer(t, w, c, cliFlags)
			if slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Secret != nil }) && ct.env["WEIR_TLS_CA"] == "" {
				t.Errorf("%s: has the certificates but no WEIR_TLS_CA", where)
			}
			ct.checkProbe(t, "readinessProbe", c.ReadinessProbe)
			ct.checkProbe(t, "livenessProbe", c.LivenessProbe)
			if a := w.template.Annotations; a["prometheus.io/scrape"] == "true" {
				n, _ := strconv.Atoi(a["prometheus.io/port"])
				ct.checkHTTP(t, "prometheus.io annotations", ct.resolvePort(intstr.FromInt32(int32(n))), a["prometheus.io/path"], a["prometheus.io/scheme"] == "https")
			} else if ct.role != "etcd" {
				t.Errorf("%s: no prometheus.io/scrape annotation", where)
			}
			conts = append(conts, ct)
		}
	}
	for _, s := range services {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		pods := podsOf(sel)
		if len(s.Spec.Selector) == 0 || len(pods) == 0 {
			t.Errorf("Service %s: selector %v selects no pods", s.Name, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			for _, c := range pods {
				if n := c.resolvePort(p.TargetPort); n == 0 || n != p.Port {
					t.Errorf("Service %s port %s: target %s is not container %s's port %d", s.Name, p.Name, p.TargetPort.String(), c.c.Name, p.Port)
				}
			}
		}
	}
	for _, o := range objs {
		switch v := o.(type) {
		case *policyv1.PodDisruptionBudget:
			sel, err := metav1.LabelSelectorAsSelector(v.Spec.Selector)
			if err != nil || len(podsOf(sel)) == 0 {
				t.Errorf("PodDisruptionBudget %s selects no pods", v.Name)
			}
		case *networkingv1.NetworkPolicy:
			sel, err := metav1.LabelSelectorAsSelector(&v.Spec.PodSelector)
			pods := podsOf(sel)
			if err != nil || len(pods) == 0 {
				t.Errorf("NetworkPolicy %s selects no pods", v.Name)
			}
			for _, rule := range v.Spec.Ingress {
				for _, peer := range rule.From {
					if peer.PodSelector == nil {
						continue
					}
					if ps, err := metav1.LabelSelectorAsSelector(peer.PodSelector); err != nil || len(podsOf(ps)) == 0 {
						t.Errorf("NetworkPolicy %s: a rule admits pods %v, which are none of weir's", v.Name, peer.PodSelector)
					}
				}
				for _, p := range rule.Ports {
					for _, c := range pods {
						if p.Port == nil || c.resolvePort(*p.Port) == 0 {
							t.Errorf("NetworkPolicy %s admits port %v, which %s's container %s does not listen on", v.Name, p.Port, c.w.name, c.c.Name)
						}
					}
				}
			}
		}
	}
	// Every container port of every pod is admitted by some policy rule.
	for _, c := range conts {
		for name, n := range c.ports {
			if !admitted(objs, c, n) {
				t.Errorf("%s %s: port %s (%d) is admitted by no NetworkPolicy", c.w.kind, c.w.name, name, n)
			}
		}
	}
	checkMembership(t, conts)
}

// admitted reports whether some NetworkPolicy selecting c's pods admits
// port n.
func admitted(objs []runtime.Object, c *container, n int32) bool {
	for _, o := range objs {
		np, ok := o.(*networkingv1.NetworkPolicy)
		if !ok {
			continue
		}
		sel, _ := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if !sel.Matches(labels.Set(c.w.template.Labels)) {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				return true
			}
			for _, p := range rule.Ports {
				if p.Port != nil && c.resolvePort(*p.Port) == n {
					return true
				}
			}
		}
	}
	return false
}

// checkMembership checks etcd's --initial-cluster against its replicas and
// that every client lists every member.
func checkMembership(t *testing.T, conts []*container) {
	t.Helper()
	var members []string
	for _, c := range conts {
		if c.role != "etcd" {
			continue
		}
		var want []string
		for i := range c.w.replicas {
			want = append(want, fmt.Sprintf("%s-%d=http://%s-%d.%s.$(POD_NAMESPACE).svc:2380", c.w.name, i, c.w.name, i, c.w.service))
			members = append(members, fmt.Sprintf("%s-%d.%s.$(POD_NAMESPACE).svc:2379", c.w.name, i, c.w.service))
		}
		if got := c.flags["--initial-cluster"]; got != strings.Join(want, ",") {
			t.Errorf("etcd %s: --initial-cluster=%s, want %s (its %d replicas)", c.w.name, got, strings.Join(want, ","), c.w.replicas)
		}
	}
	for _, c := range conts {
		if c.role == "etcd" {
			continue
		}
		if got := c.flags["--etcd"]; got != strings.Join(members, ",") {
			t.Errorf("%s %s: --etcd=%s, want every member: %s", c.w.kind, c.w.name, got, strings.Join(members, ","))
		}
	}
}

func TestKubernetesManifests(t *testing.T) {
	dec := decoder(t)
	cliFlags := weirFlags(t)

	// Every file decodes strictly, kustomization files included.
	err := filepath.WalkDir(k8sDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !strings.HasSuffix(path, ".yaml") {
			t.Errorf("%s: not a manifest", path)
			return nil
		}
		if filepath.Base(path) == "kustomization.yaml" {
			readKustomization(t, filepath.Dir(path))
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(decodeAll(t, dec, path, b)) == 0 {
			t.Errorf("%s: no objects", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	base := loadBase(t, dec)
	t.Run("base", func(t *testing.T) { checkLayout(t, base, cliFlags) })
	ha := loadHA(t, dec)
	t.Run("ha", func(t *testing.T) {
		checkLayout(t, ha, cliFlags)
		replicas := map[string]int32{}
		for _, o := range ha {
			if w := asWorkload(o); w != nil {
				replicas[w.name] = w.replicas
			}
		}
		if want := map[string]int32{"weir-etcd": 3, "weir-coordinator": 2, "weir-worker": 3}; !maps.Equal(replicas, want) {
			t.Errorf("HA replicas %v, want %v", replicas, want)
		}
		pdbs := 0
		for _, o := range ha {
			if _, ok := o.(*policyv1.PodDisruptionBudget); ok {
				pdbs++
			}
		}
		if pdbs != 3 {
			t.Errorf("%d PodDisruptionBudgets, want one per workload", pdbs)
		}
	})

	// kustomize itself renders what this test checked.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Logf("no kubectl: the layouts were checked as this test renders them, not as kustomize does")
		return
	}
	for name, objs := range map[string][]runtime.Object{"base": base, "overlays/ha": ha} {
		out, err := exec.Command(kubectl, "kustomize", filepath.Join(k8sDir, name)).Output()
		if err != nil {
			t.Fatalf("kubectl kustomize %s: %v", name, err)
		}
		rendered := decodeAll(t, dec, "kubectl kustomize "+name, out)
		if len(rendered) != len(objs) {
			t.Errorf("kustomize renders %d objects of %s, this test %d", len(rendered), name, len(objs))
		}
		for _, r := range rendered {
			mine := find(objs, r)
			if mine == nil {
				t.Errorf("%s: kustomize renders %T %s, this test does not", name, r, meta(r).Name)
				continue
			}
			if !equality.Semantic.DeepEqual(r, mine) {
				t.Errorf("%s: %T %s renders differently with kustomize", name, r, meta(r).Name)
			}
		}
	}
}
