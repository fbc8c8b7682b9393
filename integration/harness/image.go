package harness

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxRef is the name the busybox test image is imported under.
const BusyboxRef = "box.test/busybox:latest"

// BusyboxSource is the static busybox from Debian's busybox-static package.
const BusyboxSource = "/bin/busybox"

// busyboxApplets get a symlink to /bin/busybox in the image.
var busyboxApplets = []string{
	"sh", "ls", "echo", "cat", "sleep", "hostname", "id", "ip", "mount", "ps", "true", "false",
	"wc", "grep", "env", "stat", "head", "mkdir", "touch", "readlink", "kill", "umount", "nproc",
}

const (
	etcPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
		"box:x:1000:1000:box:/home/box:/bin/sh\n"
	etcGroup = "root:x:0:\n" +
		"box:x:1000:\n" +
		"boxgrp:x:1001:box\n" +
		"nogroup:x:65534:\n"
)

// entry is one file of the image root.
type entry struct {
	name   string // relative, no leading slash
	mode   int64  // permission bits
	dir    bool
	link   string // symlink target
	body   []byte
	source string // copy contents from this host file
}

// busyboxTree is the image root: busybox, its applet links, passwd/group and empty dirs.
func busyboxTree() []entry {
	es := []entry{{name: "bin", dir: true, mode: 0o755}, {name: "bin/busybox", mode: 0o755, source: BusyboxSource}}
	for _, a := range busyboxApplets {
		es = append(es, entry{name: "bin/" + a, link: "busybox", mode: 0o777})
	}
	for _, d := range []string{"dev", "proc", "sys", "etc", "root", "mnt", "run", "var", "home", "home/box"} {
		es = append(es, entry{name: d, dir: true, mode: 0o755})
	}
	es = append(es,
		entry{name: "tmp", dir: true, mode: 0o1777},
		entry{name: "etc/passwd", mode: 0o644, body: []byte(etcPasswd)},
		entry{name: "etc/group", mode: 0o644, body: []byte(etcGroup)},
	)
	return es
}

func (e entry) contents() ([]byte, error) {
	if e.source != "" {
		b, err := os.ReadFile(e.source)
		if err != nil {
			return nil, fmt.Errorf("%w (install busybox-static: make deps)", err)
		}
		return b, nil
	}
	return e.body, nil
}

// epoch is the fixed mtime of every image file, so the image digest is reproducible.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// layerTar returns the uncompressed layer tarball of busyboxTree.
func layerTar() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range busyboxTree() {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX}
		var body []byte
		switch {
		case e.dir:
			h.Typeflag, h.Name = tar.TypeDir, e.name+"/"
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		default:
			b, err := e.contents()
			if err != nil {
				return nil, err
			}
			h.Typeflag, h.Size, body = tar.TypeReg, int64(len(b)), b
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteBusyboxImage writes an OCI image layout tarball (oci-layout, index.json, blobs/sha256/…)
// of the busybox test image, named BusyboxRef, to w.
func WriteBusyboxImage(w io.Writer) error {
	layer, err := layerTar()
	if err != nil {
		return err
	}
	layerDesc := blobDesc(ocispec.MediaTypeImageLayer, layer)
	cfg, err := json.Marshal(ocispec.Image{
		Created:  &epoch,
		Platform: ocispec.Platform{Architecture: goruntime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"/bin/sh"},
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	})
	if err != nil {
		return err
	}
	cfgDesc := blobDesc(ocispec.MediaTypeImageConfig, cfg)
	manifest, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cfgDesc,
		Layers:    []ocispec.Descriptor{layerDesc},
	})
	if err != nil {
		return err
	}
	mDesc := blobDesc(ocispec.MediaTypeImageManifest, manifest)
	mDesc.Platform = &ocispec.Platform{Architecture: goruntime.GOARCH, OS: "linux"}
	mDesc.Annotations = map[string]string{
		images.AnnotationImageName: BusyboxRef,
		ocispec.AnnotationRefName:  "latest",
	}
	index, err := json.Marshal(ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{mDesc},
	})
	if err != nil {
		return err
	}
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})

	tw := tar.NewWriter(w)
	files := []struct {
		name string
		body []byte
	}{
		{ocispec.ImageLayoutFile, layout},
		{"blobs/sha256/" + layerDesc.Digest.Encoded(), layer},
		{"blobs/sha256/" + cfgDesc.Digest.Encoded(), cfg},
		{"blobs/sha256/" + mDesc.Digest.Encoded(), manifest},
		{ocispec.ImageIndexFile, index},
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}); err != nil {
			return err
		}
	}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.body)), ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(f.body); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobDesc(mediaType string, b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
}

// busyboxImage is the image tarball, built once per test binary and kept in memory.
var busyboxImage = sync.OnceValues(func() ([]byte, error) {
	var buf bytes.Buffer
	err := WriteBusyboxImage(&buf)
	return buf.Bytes(), err
})

// Busybox imports the busybox test image into this containerd (once), unpacks it for the
// overlayfs snapshotter and returns its ref, BusyboxRef.
func (c *Containerd) Busybox(t testing.TB) string {
	t.Helper()
	c.imageOnce.Do(func() { c.imageRef, c.imageErr = c.importBusybox(t) })
	if c.imageErr != nil {
		t.Fatalf("busybox image: %v", c.imageErr)
	}
	return c.imageRef
}

func (c *Containerd) importBusybox(t testing.TB) (string, error) {
	tarball, err := busyboxImage()
	if err != nil {
		return "", err
	}
	ctx := c.Context(t)
	imgs, err := c.Client.Import(ctx, bytes.NewReader(tarball))
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	for _, img := range imgs {
		if img.Name != BusyboxRef {
			continue
		}
		if err := client.NewImage(c.Client, img).Unpack(ctx, "overlayfs"); err != nil {
			return "", fmt.Errorf("unpack %s: %w", img.Name, err)
		}
		return img.Name, nil
	}
	return "", fmt.Errorf("import produced %v, not %s", imgs, BusyboxRef)
}

// BusyboxRootfs writes the busybox image root into dir (which must exist), for containers that
// use a plain rootfs directory (oci.WithRootFSPath) instead of a snapshot.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	for _, e := range busyboxTree() {
		p := filepath.Join(dir, e.name)
		var err error
		switch {
		case e.dir:
			if err = os.MkdirAll(p, 0o755); err == nil {
				err = os.Chmod(p, os.FileMode(e.mode)|modeSticky(e.mode))
			}
		case e.link != "":
			err = os.Symlink(e.link, p)
		default:
			var b []byte
			if b, err = e.contents(); err == nil {
				err = os.WriteFile(p, b, os.FileMode(e.mode))
			}
		}
		if err != nil {
			t.Fatalf("busybox rootfs: %v", err)
		}
	}
}

func modeSticky(m int64) os.FileMode {
	if m&0o1000 != 0 {
		return os.ModeSticky
	}
	return 0
}
