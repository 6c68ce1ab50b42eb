package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"meshlab/oracle/internal/crdvalidate"
)

// cmdValidate: `meshlab-oracle crd-validate CRD-FILE... < objects` prints, for each object (a JSON
// array or multi-document YAML on stdin), what the Kubernetes API server would refuse creating it
// with: a JSON array with one array of error strings per object, empty when it would be accepted.
func cmdValidate(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("crd-validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "meshlab-oracle crd-validate: name the CRD files (the objects come on stdin)")
		return exitUsage
	}
	v, err := crdvalidate.Load(fs.Args()...)
	if err != nil {
		fmt.Fprintf(stderr, "meshlab-oracle crd-validate: %v\n", err)
		return exitData
	}
	objs, err := crdvalidate.DecodeObjects(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "meshlab-oracle crd-validate: stdin: %v\n", err)
		return exitData
	}
	out := make([][]string, len(objs))
	for i, o := range objs {
		out[i] = v.Validate(context.Background(), o)
		if out[i] == nil {
			out[i] = []string{}
		}
	}
	return writeJSON(stdout, stderr, out)
}
