package crdvalidate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              unit: {type: string, default: cm, enum: [cm, m]}
              path: {type: string, pattern: '^/'}
            x-kubernetes-validations:
            - rule: "self.unit != 'm' || self.size <= 10"
              message: at most 10 m
`

func TestTheAPIServersChecks(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "crd.yaml")
	if err := os.WriteFile(file, []byte(crd), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := DecodeObjects(strings.NewReader(`
apiVersion: example.com/v1
kind: Widget
metadata: {name: ok}
spec: {size: 3}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: unknown}
spec: {size: 3, colour: red}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: cel}
spec: {size: 11, unit: m}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: schema}
spec: {size: 0, path: x}
---
apiVersion: example.com/v2
kind: Widget
metadata: {name: version}
spec: {size: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", `unknown field "spec.colour"`, "at most 10 m", "spec.size", "served versions: v1"}
	for i, o := range objs {
		got := strings.Join(v.Validate(context.Background(), o), "; ")
		if want[i] == "" && got != "" || !strings.Contains(got, want[i]) {
			t.Errorf("object %d: got %q, want %q", i, got, want[i])
		}
		if i == 3 && !strings.Contains(got, "spec.path") {
			t.Errorf("object 3: both schema errors expected, got %q", got)
		}
	}
	if unit := objs[0]["spec"].(map[string]any)["unit"]; unit != "cm" {
		t.Errorf("the CRD's default was not applied: unit = %v", unit)
	}
}
