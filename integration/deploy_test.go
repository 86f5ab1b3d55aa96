package integration

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// k8sDoc is the part of a Kubernetes object the deployment test reads.
type k8sDoc struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Replicas int `yaml:"replicas"`
		Template struct {
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
		Ports []struct {
			Port       int `yaml:"port"`
			TargetPort int `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

// k8sContainer is the part of a container spec the test reads.
type k8sContainer struct {
	Args []string `yaml:"args"`
	Env  []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Ports []struct {
		ContainerPort int `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
		} `yaml:"httpGet"`
	} `yaml:"readinessProbe"`
	VolumeMounts []struct {
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

// TestKubernetesMirrorsCompose: deploy/kubernetes.yaml runs the replicas as
// deploy/compose.yaml does (which TestDeployConfigServes and the replica
// tests run): three of them, the same command, environment variables and
// configuration path, on the port the configuration listens on, ready
// only while /readyz says so, behind a Service on that port.
func TestKubernetesMirrorsCompose(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(root, "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var compose struct {
		Replica struct {
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"x-replica"`
		Services map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(read("compose.yaml"), &compose); err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Listen string `yaml:"listen"`
	}
	if err := yaml.Unmarshal(read("megacontext.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	var replicas int
	for name := range compose.Services {
		if strings.HasPrefix(name, "replica") {
			replicas++
		}
	}
	docs := map[string]k8sDoc{}
	dec := yaml.NewDecoder(bytes.NewReader(read("kubernetes.yaml")))
	for {
		var d k8sDoc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		docs[d.Kind+"/"+d.Metadata.Name] = d
	}
	dep, svc := docs["Deployment/megacontext"], docs["Service/megacontext"]
	if dep.Spec.Replicas != replicas || replicas != 3 || len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("kubernetes.yaml runs %d replicas (%d containers each), compose.yaml %d", dep.Spec.Replicas,
			len(dep.Spec.Template.Spec.Containers), replicas)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, compose.Replica.Command) {
		t.Errorf("kubernetes.yaml runs %q, compose.yaml %q", c.Args, compose.Replica.Command)
	}
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
		if want, ok := compose.Replica.Environment[e.Name]; ok && e.Value != "" && !strings.Contains(want, "${") && e.Value != want {
			t.Errorf("%s is %q in kubernetes.yaml, %q in compose.yaml", e.Name, e.Value, want)
		}
	}
	var want []string
	for name := range compose.Replica.Environment {
		want = append(want, name)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("kubernetes.yaml sets %v, compose.yaml %v", names, want)
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	for _, v := range compose.Replica.Volumes {
		if parts := strings.Split(v, ":"); len(parts) < 2 || !slices.Contains(mounts, parts[1]) {
			t.Errorf("compose.yaml mounts %s; kubernetes.yaml mounts %v", v, mounts)
		}
	}
	port := cfg.Listen[strings.LastIndexByte(cfg.Listen, ':')+1:]
	if len(c.Ports) != 1 || len(svc.Spec.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port || strconv.Itoa(svc.Spec.Ports[0].TargetPort) != port {
		t.Errorf("the replicas listen on %s; kubernetes.yaml's container ports %v, service ports %v", port, c.Ports, svc.Spec.Ports)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe on %q, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}
	if _, ok := docs["StatefulSet/postgres"]; !ok {
		t.Error("kubernetes.yaml runs no PostgreSQL")
	}
}
