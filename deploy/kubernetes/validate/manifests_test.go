// Package validate checks deploy/kubernetes/*.yaml against Kubernetes' own
// API types (and the Prometheus Operator's for PodMonitor), strictly: an
// unknown or misspelt field, a wrong type or an unknown kind fails. Then it
// checks what ties the manifests to relayd: the flag file passes relayd's
// own --check_config (RELAYD_BIN, when set), the probes and the PodMonitor
// name ports the container has, the preStop command is relayctl's drain.
package validate

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

type manifests struct {
	configMaps  []corev1.ConfigMap
	daemonSets  []appsv1.DaemonSet
	podMonitors []monitoringv1.PodMonitor
}

// load decodes every document of every manifest, strictly.
func load(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("../*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/kubernetes: %v", err)
	}
	var m manifests
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			where := fmt.Sprintf("%s document %d (%s %s)", f, i, head.APIVersion, head.Kind)
			var target any
			switch head.APIVersion + " " + head.Kind {
			case "v1 ConfigMap":
				m.configMaps = append(m.configMaps, corev1.ConfigMap{})
				target = &m.configMaps[len(m.configMaps)-1]
			case "apps/v1 DaemonSet":
				m.daemonSets = append(m.daemonSets, appsv1.DaemonSet{})
				target = &m.daemonSets[len(m.daemonSets)-1]
			case "monitoring.coreos.com/v1 PodMonitor":
				m.podMonitors = append(m.podMonitors, monitoringv1.PodMonitor{})
				target = &m.podMonitors[len(m.podMonitors)-1]
			default:
				t.Fatalf("%s: a kind this check does not know", where)
			}
			if err := yaml.UnmarshalStrict(doc, target); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
		}
	}
	return m
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	if len(m.configMaps) != 1 || len(m.daemonSets) != 1 || len(m.podMonitors) != 1 {
		t.Fatalf("want one ConfigMap, DaemonSet and PodMonitor, got %d, %d, %d",
			len(m.configMaps), len(m.daemonSets), len(m.podMonitors))
	}
}

// The strict decoder does catch a misspelt field (this test's own guard).
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	bad := []byte("apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostNetwrk: true\n")
	var ds appsv1.DaemonSet
	if err := yaml.UnmarshalStrict(bad, &ds); err == nil {
		t.Fatal("hostNetwrk accepted")
	}
}

func TestDaemonSetFitsRelayd(t *testing.T) {
	m := load(t)
	ds := m.daemonSets[0]
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork {
		t.Error("not on the host network: clients could not reach the node's address")
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	ports := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		ports[p.Name] = p
	}
	if p := ports["relay"]; p.Protocol != corev1.ProtocolUDP || p.ContainerPort != 7777 {
		t.Errorf("relay port: %+v", p)
	}
	for name, probe := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil {
			t.Errorf("%s probe missing", name)
			continue
		}
		if _, ok := ports[probe.HTTPGet.Port.StrVal]; !ok {
			t.Errorf("%s probe on port %q, which the container does not name", name, probe.HTTPGet.Port.StrVal)
		}
	}
	if c.LivenessProbe.HTTPGet.Path != "/livez" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("probes must be /livez and /readyz")
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Exec == nil ||
		!strings.Contains(strings.Join(c.Lifecycle.PreStop.Exec.Command, " "), "/usr/bin/relayctl") ||
		!strings.Contains(strings.Join(c.Lifecycle.PreStop.Exec.Command, " "), " drain") {
		t.Error("no preStop drain")
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Error("no memory limit: relayd would size its endpoint cap from the node's memory")
	}
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < 30 {
		t.Error("grace period shorter than preStop's wait plus --stop_timeout")
	}
	pm := m.podMonitors[0]
	if len(pm.Spec.PodMetricsEndpoints) != 1 || ports[pm.Spec.PodMetricsEndpoints[0].Port].Name == "" {
		t.Error("PodMonitor does not scrape a port the container names")
	}
}

// The flag file in the ConfigMap passes relayd's own check, with the
// token path pointed at a file that exists here.
func TestFlagFilePassesRelaydCheck(t *testing.T) {
	relayd := os.Getenv("RELAYD_BIN")
	if relayd == "" {
		t.Skip("RELAYD_BIN not set (scripts/run_tests.sh sets it)")
	}
	m := load(t)
	flags := m.configMaps[0].Data["relayd.flags"]
	if flags == "" {
		t.Fatal("no relayd.flags in the ConfigMap")
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "admin_token")
	if err := os.WriteFile(token, []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags = strings.ReplaceAll(flags, "/etc/relayd/token/admin_token", token)
	flags = strings.ReplaceAll(flags, "/var/lib/relayd/key", filepath.Join(dir, "key"))
	file := filepath.Join(dir, "relayd.flags")
	if err := os.WriteFile(file, []byte(flags), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(relayd, "--flagfile="+file, "--advertise=192.0.2.10", "--check_config").CombinedOutput()
	if err != nil {
		t.Fatalf("relayd --check_config: %v\n%s", err, out)
	}
	for _, want := range []string{"config ok: port 7777", "HTTP allocation token required", "metrics 0.0.0.0:9781"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("check_config output lacks %q:\n%s", want, out)
		}
	}
}
