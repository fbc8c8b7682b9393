package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func testStore(t *testing.T) (*store, map[string]string) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs busybox-static (make deps)")
	}
	s, list, err := build("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	return s, list
}

// Every tag resolves to an index whose manifests, configs and layers are all in the store, and
// the build is reproducible.
func TestImagesComplete(t *testing.T) {
	s, list := testStore(t)
	for ref, d := range s.tags {
		var idx ocispec.Index
		mustJSON(t, s, d, &idx)
		if len(idx.Manifests) == 0 {
			t.Errorf("%s: empty index", ref)
		}
		for _, md := range idx.Manifests {
			if md.Platform == nil {
				t.Errorf("%s: manifest %s without platform", ref, md.Digest)
			}
			var m ocispec.Manifest
			mustJSON(t, s, md.Digest, &m)
			var img ocispec.Image
			mustJSON(t, s, m.Config.Digest, &img)
			if len(img.RootFS.DiffIDs) != len(m.Layers) {
				t.Errorf("%s: %d diff ids for %d layers", ref, len(img.RootFS.DiffIDs), len(m.Layers))
			}
			for _, l := range m.Layers {
				if b, ok := s.blobs[l.Digest]; !ok || int64(len(b.data)) != l.Size {
					t.Errorf("%s: layer %s missing or of the wrong size", ref, l.Digest)
				}
			}
		}
	}
	by := list["BusyBoxByDigest"]
	if _, ok := s.blobs[digest.Digest(by[strings.Index(by, "@")+1:])]; !ok {
		t.Errorf("BusyBoxByDigest %s is not in the store", by)
	}
	s2, _ := testStore(t)
	for ref, d := range s.tags {
		if s2.tags[ref] != d {
			t.Errorf("%s: digest differs between two builds", ref)
		}
	}
}

func mustJSON(t *testing.T, s *store, d digest.Digest, v any) {
	t.Helper()
	b, ok := s.blobs[d]
	if !ok {
		t.Fatalf("blob %s missing", d)
	}
	if digest.FromBytes(b.data) != d {
		t.Fatalf("blob %s has digest %s", d, digest.FromBytes(b.data))
	}
	if err := json.Unmarshal(b.data, v); err != nil {
		t.Fatal(err)
	}
}

// The proxy answers an HTTPS request for any host itself, with a certificate from its CA.
func TestProxyServesAnyHost(t *testing.T) {
	s, _ := testStore(t)
	authority, err := newCA()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&proxy{ca: authority, registry: s})
	defer srv.Close()
	pu, _ := url.Parse(srv.URL)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(authority.pem)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{RootCAs: roots}}}

	req, _ := http.NewRequest(http.MethodHead, "https://images.invalid/v2/"+strings.Replace(repoBusybox, ":", "/manifests/", 1), nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ocispec.MediaTypeImageIndex ||
		resp.Header.Get("Docker-Content-Digest") != s.tags[repoBusybox].String() {
		t.Fatalf("HEAD busybox: %s %v", resp.Status, resp.Header)
	}
	resp, err = c.Get("https://other.invalid/v2/no/such/manifests/1")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown image: %s, want 404", resp.Status)
	}
}

// Blobs honour Range requests (containerd resumes partial downloads).
func TestBlobRange(t *testing.T) {
	s, _ := testStore(t)
	srv := httptest.NewServer(s)
	defer srv.Close()
	var d digest.Digest
	for k, b := range s.blobs {
		if len(b.data) > 100 && b.mediaType == ocispec.MediaTypeImageLayerGzip {
			d = k
			break
		}
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/any/repo/blobs/"+d.String(), nil)
	req.Header.Set("Range", "bytes=10-")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(b) != string(s.blobs[d].data[10:]) {
		t.Fatalf("range: %s, %d bytes", resp.Status, len(b))
	}
}
