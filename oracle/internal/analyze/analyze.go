// Package analyze runs Istio's configuration analyzers on files, in-process, the way
// `istioctl analyze --use-kube=false FILE...` does (istioctl/pkg/analyze/analyze.go at the pinned
// commit): all combined analyzers, Istio's default in-memory resources (the ingress gateway
// Service and Pod it assumes), the files as one source, messages at Info and above for the selected
// namespace, and istioctl's exit status (istioctl/cmd/sysexits.go).
package analyze

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"istio.io/istio/istioctl/pkg/util/formatting"
	"istio.io/istio/pkg/config/analysis/analyzers"
	"istio.io/istio/pkg/config/analysis/diag"
	"istio.io/istio/pkg/config/analysis/local"
	"istio.io/istio/pkg/config/analysis/msg"
	"istio.io/istio/pkg/config/resource"
)

// Exit statuses, as istioctl's (istioctl/cmd/sysexits.go).
const (
	ExitOK                  = 0
	ExitDataError           = 65 // some file could not be parsed
	ExitAnalyzerFoundIssues = 79 // a message at Error level
)

// Options mirror istioctl analyze's flags that apply to files.
type Options struct {
	Namespace      string // -n; messages for objects in other namespaces are dropped ("default" if empty)
	AllNamespaces  bool   // -A
	IstioNamespace string // --istioNamespace (istio-system)
	MeshConfigFile string // --meshConfigFile
	// AsCluster analyzes the files as the whole content of a cluster: Services, Pods, Namespaces,
	// Nodes and Secrets in them count, as they do when istioctl analyzes a live cluster. Istio's
	// own analyzer tests load their inputs this way (local.IstiodAnalyzer.AddTestReaderKubeSource).
	// Without it, as `istioctl analyze --use-kube=false FILE...`, those kinds are ignored in files
	// (pkg/config/analysis/legacy/util/kuberesource.DefaultExcludedSchemas) and the analyzers that
	// need them are skipped.
	AsCluster bool
	Stdin     io.Reader
}

// Message is one analyzer message, with istioctl's JSON fields (diag.Message.Unstructured) and
// the resource it is about, split out.
type Message struct {
	Code             string `json:"code"`
	Level            string `json:"level"`
	Origin           string `json:"origin,omitempty"`    // "VirtualService default/reviews"
	Reference        string `json:"reference,omitempty"` // "file.yaml:12"
	Message          string `json:"message"`
	DocumentationURL string `json:"documentationUrl"`
	Kind             string `json:"kind,omitempty"`
	Namespace        string `json:"namespace,omitempty"`
	Name             string `json:"name,omitempty"`
	File             string `json:"file,omitempty"`
	Line             int    `json:"line,omitempty"`
}

// Result is an analysis.
type Result struct {
	Files       []string  `json:"files"`
	Skipped     []string  `json:"skipped,omitempty"`     // files istioctl skips (extension)
	ParseErrors []string  `json:"parseErrors,omitempty"` // "Error(s) adding files: ..."
	Messages    []Message `json:"messages"`
	// Log is the text istioctl prints on stdout (its default "log" output format).
	Log string `json:"log"`
	// ExitStatus is istioctl's exit status with its default output format: 79 when a message is
	// at Error level, else 65 when a file could not be parsed, else 0. (With -o json istioctl
	// always exits 0.)
	ExitStatus        int      `json:"exitStatus"`
	ExecutedAnalyzers []string `json:"executedAnalyzers"`
	SkippedAnalyzers  []string `json:"skippedAnalyzers,omitempty"`
}

var extensions = []string{".json", ".yaml", ".yml"}

func validFile(f string) bool {
	ext := filepath.Ext(f)
	for _, e := range extensions {
		if e == ext {
			return true
		}
	}
	return false
}

// gather collects readers as istioctl's gatherFiles does: "-" is stdin, directories are walked,
// files without a .json/.yaml/.yml extension are skipped.
func gather(args []string, stdin io.Reader) ([]local.ReaderSource, []string, []string, error) {
	var readers []local.ReaderSource
	var names, skipped []string
	add := func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		readers = append(readers, local.ReaderSource{Name: path, Reader: strings.NewReader(string(b))})
		names = append(names, path)
		return nil
	}
	for _, f := range args {
		if f == "-" {
			if stdin == nil {
				stdin = os.Stdin
			}
			readers = append(readers, local.ReaderSource{Name: f, Reader: stdin})
			names = append(names, f)
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return nil, nil, nil, err
		}
		if fi.IsDir() {
			err := filepath.Walk(f, func(path string, info os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				if info.IsDir() {
					return nil
				}
				if !validFile(path) {
					skipped = append(skipped, path)
					return nil
				}
				return add(path)
			})
			if err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		if !validFile(f) {
			skipped = append(skipped, f)
			continue
		}
		if err := add(f); err != nil {
			return nil, nil, nil, err
		}
	}
	return readers, names, skipped, nil
}

// Run analyzes the files.
func Run(args []string, opts Options) (*Result, error) {
	readers, names, skipped, err := gather(args, opts.Stdin)
	if err != nil {
		return nil, err
	}
	ns := opts.Namespace
	if opts.AllNamespaces {
		ns = ""
	} else if ns == "" {
		ns = "default"
	}
	istioNS := opts.IstioNamespace
	if istioNS == "" {
		istioNS = "istio-system"
	}
	res := &Result{Files: names, Skipped: skipped, Messages: []Message{}}
	sa := local.NewIstiodAnalyzer(analyzers.AllCombined(), resource.Namespace(ns), resource.Namespace(istioNS), nil)
	if opts.MeshConfigFile != "" {
		if err := sa.AddFileKubeMeshConfig(opts.MeshConfigFile); err != nil {
			return nil, fmt.Errorf("meshConfigFile: %v", err)
		}
	}
	add := sa.AddReaderKubeSource
	if opts.AsCluster {
		add = sa.AddTestReaderKubeSource
	} else if err := sa.AddDefaultResources(); err != nil {
		// istioctl adds its assumed ingress gateway only when it does not read a cluster.
		return nil, err
	}
	parseErrors := 0
	if len(readers) > 0 {
		if err := add(readers); err != nil {
			res.ParseErrors = append(res.ParseErrors, err.Error())
			parseErrors++
		}
	}
	cancel := make(chan struct{})
	defer close(cancel)
	ar, err := sa.Analyze(cancel)
	if err != nil {
		return nil, err
	}
	res.ExecutedAnalyzers = ar.ExecutedAnalyzers
	res.SkippedAnalyzers = ar.SkippedAnalyzers
	out := ar.Messages.SetDocRef("istioctl-analyze").FilterOutLowerThan(diag.Info)
	for i := range out {
		res.Messages = append(res.Messages, convert(&out[i]))
	}
	res.Log, err = formatting.Print(out, formatting.LogFormat, false)
	if err != nil {
		return nil, err
	}
	res.ExitStatus = ExitOK
	for _, m := range ar.Messages {
		if m.Type.Level().IsWorseThanOrEqualTo(diag.Error) {
			res.ExitStatus = ExitAnalyzerFoundIssues
		}
	}
	if res.ExitStatus == ExitOK && parseErrors > 0 {
		res.ExitStatus = ExitDataError
	}
	return res, nil
}

func convert(m *diag.Message) Message {
	u := m.Unstructured(true)
	out := Message{
		Code:             fmt.Sprint(u["code"]),
		Level:            fmt.Sprint(u["level"]),
		Message:          fmt.Sprint(u["message"]),
		DocumentationURL: fmt.Sprint(u["documentationUrl"]),
	}
	if v, ok := u["origin"]; ok {
		out.Origin = fmt.Sprint(v)
	}
	if v, ok := u["reference"]; ok {
		out.Reference = fmt.Sprint(v)
		if i := strings.LastIndex(out.Reference, ":"); i > 0 {
			out.File = out.Reference[:i]
			fmt.Sscanf(out.Reference[i+1:], "%d", &out.Line)
		}
	}
	if m.Resource != nil {
		out.Kind = m.Resource.Origin.FriendlyName()
		if sp := strings.SplitN(out.Kind, " ", 2); len(sp) == 2 {
			out.Kind = sp[0]
		}
		out.Namespace = m.Resource.Metadata.FullName.Namespace.String()
		out.Name = m.Resource.Metadata.FullName.Name.String()
	}
	return out
}

// MessageType is one entry of the analyzer message table.
type MessageType struct {
	Code        string `json:"code"`
	Level       string `json:"level"`
	Template    string `json:"template"`
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
}

// Messages returns the linked release's analyzer message table (pkg/config/analysis/msg.All):
// code, level and template, as the binary uses them.
func Messages() []MessageType {
	var out []MessageType
	for _, t := range msg.All() {
		out = append(out, MessageType{Code: t.Code(), Level: t.Level().String(), Template: t.Template()})
	}
	return out
}
