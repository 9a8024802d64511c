// Command dist builds the release artifacts into dist/ (`make dist`): the
// tarball, the .deb and SHA256SUMS; see package internal/dist.
//
//	go run ./tools/dist [-out dist] [-version V]
//	go run ./tools/dist version     # print the version make dist would use
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/vxlan6/vxlan6/internal/dist"
)

func main() {
	out := flag.String("out", "dist", "output directory")
	version := flag.String("version", "", "package version (default: from git, see internal/dist.Describe)")
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	src, err := dist.Describe(*root)
	if err != nil {
		fail(err)
	}
	if *version != "" {
		src.Version = *version
	}
	if flag.Arg(0) == "version" {
		fmt.Println(src.Version)
		return
	}
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected argument %q", flag.Arg(0)))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := dist.Build(ctx, dist.Options{Root: *root, Out: *out, Source: src, Log: os.Stdout}); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "dist: %v\n", err)
	os.Exit(1)
}
