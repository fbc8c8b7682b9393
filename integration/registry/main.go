// Command registry serves the images of containerd's client suite (integration/client),
// built locally from the host's static busybox, so that the suite runs offline
// (hack/client-suite.sh).
//
//	registry -addr 127.0.0.1:5000 -proxy 127.0.0.1:5001 -out DIR
//
// It listens on -addr (plain HTTP, a read-only OCI distribution API) and on -proxy (an HTTPS
// proxy that answers every CONNECT itself, for the references the suite hard-codes), then
// writes DIR/ca.pem (the proxy's CA, for SSL_CERT_FILE) and DIR/image-list.toml (for the
// suite's -image-list: its images on -addr) and serves until SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "registry address (loopback only)")
	proxyAddr := flag.String("proxy", "127.0.0.1:5001", "HTTPS proxy address (loopback only)")
	out := flag.String("out", "", "directory for ca.pem and image-list.toml")
	busybox := flag.String("busybox", "/bin/busybox", "static busybox the images are built from")
	flag.Parse()
	log.SetPrefix("registry: ")
	if err := run(*addr, *proxyAddr, *out, *busybox); err != nil {
		log.Fatal(err)
	}
}

func run(addr, proxyAddr, out, busybox string) error {
	if out == "" {
		return fmt.Errorf("-out is required")
	}
	for _, a := range []string{addr, proxyAddr} {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("%s: only loopback addresses", a)
		}
	}
	s, list, err := build(busybox)
	if err != nil {
		return fmt.Errorf("build images: %w", err)
	}
	authority, err := newCA()
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	pl, err := net.Listen("tcp", proxyAddr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: time.Minute}
	psrv := &http.Server{Handler: &proxy{ca: authority, registry: s}, ReadHeaderTimeout: time.Minute}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(l) }()
	go func() { errc <- psrv.Serve(pl) }()

	if err := writeFile(filepath.Join(out, "ca.pem"), authority.pem); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(out, "image-list.toml"), []byte(imageList(addr, list))); err != nil {
		return err
	}
	log.Printf("serving %d tags, %d blobs on %s, proxy on %s", len(s.tags), len(s.blobs), addr, proxyAddr)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-errc:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	psrv.Shutdown(ctx)
	return nil
}

// imageList renders the suite's -image-list TOML: every field of its ImageList on addr.
func imageList(addr string, list map[string]string) string {
	keys := make([]string, 0, len(list))
	for k := range list {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by integration/registry: the client suite's images, built locally\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %q\n", k, addr+"/"+list[k])
	}
	return b.String()
}

// writeFile writes atomically (rename), so a reader never sees half a file.
func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
