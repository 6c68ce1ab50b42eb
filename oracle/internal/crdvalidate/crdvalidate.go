// Package crdvalidate runs the Kubernetes API server's own admission checks for custom resources
// (k8s.io/apiextensions-apiserver, linked at the version Istio's go.mod requires) on objects, in
// process: strict field validation (unknown fields, as `kubectl apply` sends them), the CRD's
// defaults, its OpenAPI v3 schema, x-kubernetes-list-type map/set keys, embedded ObjectMeta and the
// x-kubernetes-validations CEL rules, in the order pkg/registry/customresource/strategy.go and
// pkg/apiserver/customresource_handler.go apply them on create.
//
// It is the judge for meshlab's loader on CRD-backed kinds (the Gateway API's, Istio's): a test
// sends mutants of valid objects and compares verdicts. No API server or etcd is started.
package crdvalidate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// version is one served version of one CRD, ready to validate objects.
type version struct {
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// Validator holds the CRDs it was given, by group, kind and version.
type Validator struct {
	versions map[schema.GroupVersionKind]*version
	kinds    map[schema.GroupKind][]string // served versions, for the error naming them
}

// Load reads CRD documents (multi-document YAML) from files; other kinds in them are skipped.
func Load(paths ...string) (*Validator, error) {
	v := &Validator{versions: map[schema.GroupVersionKind]*version{}, kinds: map[schema.GroupKind][]string{}}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for i := 0; ; i++ {
			var crd apiextensionsv1.CustomResourceDefinition
			if err := dec.Decode(&crd); err == io.EOF {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: document %d: %v", p, i+1, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue
			}
			if err := v.add(&crd); err != nil {
				return nil, fmt.Errorf("%s: %s: %v", p, crd.Name, err)
			}
		}
	}
	return v, nil
}

func (v *Validator) add(crd *apiextensionsv1.CustomResourceDefinition) error {
	gk := schema.GroupKind{Group: crd.Spec.Group, Kind: crd.Spec.Names.Kind}
	for _, ver := range crd.Spec.Versions {
		if !ver.Served || ver.Schema == nil {
			continue
		}
		internal := &apiextensionsinternal.CustomResourceValidation{}
		if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(ver.Schema, internal, nil); err != nil {
			return err
		}
		s, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
		if err != nil {
			return err
		}
		sv, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
		if err != nil {
			return err
		}
		v.versions[gk.WithVersion(ver.Name)] = &version{structural: s, schema: sv,
			cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}
		v.kinds[gk] = append(v.kinds[gk], ver.Name)
	}
	return nil
}

// Validate returns what the API server would refuse creating obj with (nil: it would accept it),
// one "path: message" string per error, as field.Error formats them. obj is changed (pruned,
// defaulted) as the API server changes it.
func (v *Validator) Validate(ctx context.Context, obj map[string]any) []string {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return []string{fmt.Sprintf("apiVersion: %v", err)}
	}
	ver, ok := v.versions[gv.WithKind(kind)]
	if !ok {
		return []string{fmt.Sprintf("no CRD serves %s %s (served versions: %s)", apiVersion, kind,
			strings.Join(v.kinds[gv.WithKind(kind).GroupKind()], ", "))}
	}
	var out []string
	// customresource_handler.go (unstructuredSchemaCoercer.apply): prune, reporting what was
	// pruned; strict field validation turns those into errors.
	opts := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
	for _, p := range structuralpruning.PruneWithOptions(obj, ver.structural, true, opts) {
		out = append(out, fmt.Sprintf("%s: unknown field %q", p, p))
	}
	structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, ver.structural)
	if err, _ := schemaobjectmeta.CoerceWithOptions(nil, obj, ver.structural, false, schemaobjectmeta.CoerceOptions{}); err != nil {
		out = append(out, err.Error())
	}
	// the defaulting decoder, then strategy.Validate
	structuraldefaulting.Default(obj, ver.structural)
	var errs field.ErrorList
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, ver.schema)...)
	errs = append(errs, schemaobjectmeta.Validate(nil, obj, ver.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, ver.structural, obj)...)
	// hasBlockingErr in strategy.go: CEL rules are not run over an object the schema refused this way
	blocking := false
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			blocking = true
		}
	}
	if !blocking {
		celErrs, _ := ver.cel.Validate(ctx, nil, ver.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	for _, e := range errs {
		out = append(out, e.Error())
	}
	sort.Strings(out)
	return out
}

// DecodeObjects reads objects from a JSON array or multi-document YAML, numbers as the API
// server's decoder reads them (int64 where integral, else float64).
func DecodeObjects(r io.Reader) ([]map[string]any, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var objs []map[string]any
	if trimmed := bytes.TrimSpace(data); bytes.HasPrefix(trimmed, []byte("[")) {
		if err := utiljson.Unmarshal(trimmed, &objs); err != nil {
			return nil, err
		}
		return objs, nil
	}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := docs.Read()
		if err == io.EOF {
			return objs, nil
		} else if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		var o map[string]any
		if err := utiljson.Unmarshal(j, &o); err != nil {
			return nil, fmt.Errorf("document %d: %v", i, err)
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
}
