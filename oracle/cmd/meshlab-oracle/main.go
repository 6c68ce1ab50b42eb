// Command meshlab-oracle answers questions about Istio's behaviour with Istio's own code, linked
// as a Go module: istiod's translation of a state into xDS, Istio's request simulation, and
// Istio's configuration analyzers. See oracle/README.md for the JSON contract.
//
//	meshlab-oracle simulate [--log-level LEVEL] < request.json > response.json
//	meshlab-oracle xds [--log-level LEVEL] < request.json > xds.json
//	meshlab-oracle analyze [--json] [-n NS | -A] [--meshConfigFile F] FILE|DIR|- ...
//	meshlab-oracle messages [--no-source]
//	meshlab-oracle crd-validate CRD-FILE... < objects.json
//	meshlab-oracle version
//
// Exit statuses: 0 success; 2 usage error; 65 bad input (the message names the file, document,
// object and field); 70 internal error; analyze exits as istioctl analyze does (0, 65, 79).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	istiolog "istio.io/istio/pkg/log"

	"meshlab/oracle/internal/analyze"
	"meshlab/oracle/internal/simulate"
	"meshlab/oracle/internal/version"
)

const (
	exitUsage    = 2
	exitData     = 65
	exitInternal = 70
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage:
  meshlab-oracle simulate [--log-level none|error|warn|info|debug] < request.json
  meshlab-oracle xds [--log-level none|error|warn|info|debug] < request.json
  meshlab-oracle analyze [--json] [--as-cluster] [-n NAMESPACE | -A] [--meshConfigFile FILE] FILE|DIR|- ...
  meshlab-oracle messages [--no-source]
  meshlab-oracle crd-validate CRD-FILE... < objects (JSON array or YAML documents)
  meshlab-oracle version`)
}

// quietLogs sends Istio's logs to stderr at the given level ("none" by default): the harness logs
// a great deal at info, and stdout is for the answer.
func quietLogs(level string) error {
	lv, ok := map[string]istiolog.Level{
		"none": istiolog.NoneLevel, "error": istiolog.ErrorLevel, "warn": istiolog.WarnLevel,
		"info": istiolog.InfoLevel, "debug": istiolog.DebugLevel,
	}[level]
	if !ok {
		return fmt.Errorf("--log-level %q: want none, error, warn, info or debug", level)
	}
	o := istiolog.DefaultOptions()
	o.OutputPaths = []string{"stderr"}
	o.ErrorOutputPaths = []string{"stderr"}
	for _, s := range istiolog.Scopes() {
		o.SetDefaultOutputLevel(s.Name(), lv)
	}
	o.SetDefaultOutputLevel(istiolog.DefaultScopeName, lv)
	return istiolog.Configure(o)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "simulate":
		return cmdSimulate(args[1:], stdin, stdout, stderr, false)
	case "xds":
		return cmdSimulate(args[1:], stdin, stdout, stderr, true)
	case "analyze":
		return cmdAnalyze(args[1:], stdin, stdout, stderr)
	case "messages":
		return cmdMessages(args[1:], stdout, stderr)
	case "crd-validate":
		return cmdValidate(args[1:], stdin, stdout, stderr)
	case "version":
		return writeJSON(stdout, stderr, version.Get())
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "meshlab-oracle: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func writeJSON(stdout, stderr io.Writer, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(stderr, "meshlab-oracle: writing output: %v\n", err)
		return exitInternal
	}
	return 0
}

// cmdSimulate runs `simulate`, or with xds `xds`: the same request, but no calls are simulated
// and the answer is each proxy's whole LDS/CDS/RDS/EDS with Envoy's proto field names, the form a
// file-based xDS Envoy loads (a spike: bench/README.md, Lab(control_plane="istiod")).
func cmdSimulate(args []string, stdin io.Reader, stdout, stderr io.Writer, xds bool) int {
	name := "simulate"
	if xds {
		name = "xds"
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := fs.String("log-level", "none", "Istio's log level on stderr")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "meshlab-oracle %s: reads the request from stdin and takes no arguments\n", name)
		return exitUsage
	}
	if err := quietLogs(*logLevel); err != nil {
		fmt.Fprintln(stderr, "meshlab-oracle "+name+":", err)
		return exitUsage
	}
	dec := json.NewDecoder(stdin)
	dec.DisallowUnknownFields()
	var req simulate.Request
	if err := dec.Decode(&req); err != nil {
		fmt.Fprintf(stderr, "meshlab-oracle %s: request JSON on stdin: %v\n", name, err)
		return exitData
	}
	if xds {
		if len(req.Calls) > 0 || len(req.Config) > 0 {
			fmt.Fprintln(stderr, "meshlab-oracle xds: the request takes no calls and no config (use simulate)")
			return exitData
		}
		req.ProtoNames = true
	}
	resp, err := simulate.Run(&req)
	if err != nil {
		fmt.Fprintf(stderr, "meshlab-oracle %s: %v\n", name, err)
		var ie *simulate.InputError
		if errors.As(err, &ie) {
			return exitData
		}
		return exitInternal
	}
	if xds {
		return writeJSON(stdout, stderr, struct {
			Istio    version.Info                    `json:"istio"`
			Warnings []string                        `json:"warnings"`
			Proxies  map[string]simulate.ProxyConfig `json:"proxies"`
			Timing   simulate.Timing                 `json:"timing"`
		}{resp.Istio, resp.Warnings, resp.Config, resp.Timing})
	}
	return writeJSON(stdout, stderr, resp)
}

func cmdAnalyze(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print a JSON result instead of istioctl's text")
	ns := fs.String("n", "", "namespace whose messages are reported (istioctl -n; default \"default\")")
	fs.StringVar(ns, "namespace", "", "same as -n")
	all := fs.Bool("A", false, "report messages for all namespaces (istioctl -A)")
	fs.BoolVar(all, "all-namespaces", false, "same as -A")
	asCluster := fs.Bool("as-cluster", false, "treat the files as a cluster's whole content (Services, Pods, Namespaces count)")
	meshCfg := fs.String("meshConfigFile", "", "mesh config to analyze with (istioctl --meshConfigFile)")
	logLevel := fs.String("log-level", "none", "Istio's log level on stderr")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "meshlab-oracle analyze: give at least one FILE, DIR or -")
		return exitUsage
	}
	if err := quietLogs(*logLevel); err != nil {
		fmt.Fprintln(stderr, "meshlab-oracle analyze:", err)
		return exitUsage
	}
	res, err := analyze.Run(fs.Args(), analyze.Options{Namespace: *ns, AllNamespaces: *all, MeshConfigFile: *meshCfg, AsCluster: *asCluster, Stdin: stdin})
	if err != nil {
		fmt.Fprintf(stderr, "meshlab-oracle analyze: %v\n", err)
		return exitData
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(stderr, "Skipping file %v, recognized file extensions are: [.json .yaml .yml]\n", s)
	}
	for _, e := range res.ParseErrors {
		fmt.Fprintf(stderr, "Error(s) adding files: %v", e)
	}
	if *asJSON {
		out := struct {
			Istio version.Info `json:"istio"`
			*analyze.Result
		}{version.Get(), res}
		if code := writeJSON(stdout, stderr, out); code != 0 {
			return code
		}
		return res.ExitStatus
	}
	fmt.Fprintln(stdout, res.Log)
	if len(res.Messages) == 0 && len(res.ParseErrors) == 0 {
		fmt.Fprintln(stderr, "\u2714 No validation issues found.")
	}
	return res.ExitStatus
}

func cmdMessages(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("messages", flag.ContinueOnError)
	fs.SetOutput(stderr)
	noSource := fs.Bool("no-source", false, "do not read names and descriptions from the module cache")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	table := analyze.Messages()
	out := struct {
		Istio    version.Info          `json:"istio"`
		Source   string                `json:"namesFrom"`
		Messages []analyze.MessageType `json:"messages"`
	}{Istio: version.Get(), Messages: table}
	if !*noSource {
		path, err := analyze.SourcePath()
		if err == nil {
			err = analyze.AnnotateFromSource(table, path)
		}
		if err != nil {
			fmt.Fprintf(stderr, "meshlab-oracle messages: names and descriptions unavailable: %v\n", err)
			return exitInternal
		}
		out.Source = "istio.io/istio@" + version.Get().Version + "/pkg/config/analysis/msg/messages.yaml"
	}
	return writeJSON(stdout, stderr, out)
}
