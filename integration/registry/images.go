package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	goruntime "runtime"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The images containerd's client suite pulls, rebuilt locally. Each is an OCI index: the host's
// platform gets a runnable image made from the static busybox of Debian's busybox-static, the
// other platforms (present because the suite's multi-platform tests count and fetch them) get a
// small marker layer and are never run.

// epoch is every file's mtime and every config's creation time: digests are reproducible.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// file is one entry of a layer.
type file struct {
	name     string // relative
	mode     int64
	dir      bool
	link     string // symlink target
	body     []byte
	uid, gid int
}

// platform of the host-runnable images.
var hostPlatform = ocispec.Platform{OS: "linux", Architecture: goruntime.GOARCH}

// otherPlatforms are the extra manifests of a multi-platform index.
var otherPlatforms = []ocispec.Platform{
	{OS: "linux", Architecture: "arm", Variant: "v7"},
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "ppc64le"},
	{OS: "linux", Architecture: "s390x"},
	{OS: "linux", Architecture: "amd64"},
}

const (
	busyboxPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"daemon:x:1:1:daemon:/usr/sbin:/bin/false\n" +
		"bin:x:2:2:bin:/bin:/bin/false\n" +
		"sys:x:3:3:sys:/dev:/bin/false\n" +
		"sync:x:4:100:sync:/bin:/bin/sync\n" +
		"mail:x:8:8:mail:/var/spool/mail:/bin/false\n" +
		"www-data:x:33:33:www-data:/var/www:/bin/false\n" +
		"backup:x:34:34:backup:/var/backups:/bin/false\n" +
		"operator:x:37:37:Operator:/var:/bin/false\n" +
		"nobody:x:65534:65534:nobody:/home:/bin/false\n"
	busyboxGroup = "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\n" +
		"lp:x:7:\nmail:x:8:\nkmem:x:9:\nwheel:x:10:root\ncdrom:x:11:\ndialout:x:18:\nfloppy:x:19:\n" +
		"video:x:28:\naudio:x:29:\ntape:x:32:\nwww-data:x:33:\nbackup:x:34:\noperator:x:37:\n" +
		"utmp:x:43:\nplugdev:x:46:\nstaff:x:50:\nlock:x:54:\nnetdev:x:82:\nusers:x:100:\nnogroup:x:65534:\n"
)

// ncWrapper stands in for the nc applet. The suite runs `nc -l -p 80` as a container's init and
// expects SIGTERM to end it with status 143; Debian's busybox nc installs no SIGTERM handler, so
// the kernel drops SIGTERM sent to it as a pid namespace's init (on any runtime) and those
// tests would hang. The real nc still does the work (binding the port with whatever
// capabilities the container gets); the shell around it exits 143 on SIGTERM.
const ncWrapper = `#!/bin/sh
trap 'kill -TERM "$child" 2>/dev/null; exit 143' TERM
/bin/busybox nc "$@" <&0 &
child=$!
wait "$child"
`

// busyboxFiles is a busybox image root: /bin/busybox, a link for every applet at the path
// `busybox --list-full` gives, passwd/group like the upstream busybox image, the usual dirs.
func busyboxFiles(busybox string) ([]file, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return nil, fmt.Errorf("%w (install busybox-static: make deps)", err)
	}
	out, err := exec.Command(busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", busybox, err)
	}
	fs := []file{}
	dirs := map[string]bool{}
	addDir := func(d string, mode int64) {
		if !dirs[d] {
			dirs[d] = true
			fs = append(fs, file{name: d, dir: true, mode: mode})
		}
	}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "etc", "root",
		"home", "mnt", "run", "var", "var/spool", "var/spool/mail", "var/www"} {
		addDir(d, 0o755)
	}
	addDir("tmp", 0o1777)
	fs = append(fs, file{name: "bin/busybox", mode: 0o755, body: bin})
	for _, p := range strings.Fields(string(out)) {
		if p == "bin/busybox" {
			continue
		}
		if path.Base(p) == "nc" {
			addDir(path.Dir(p), 0o755)
			fs = append(fs, file{name: p, mode: 0o755, body: []byte(ncWrapper)})
			continue
		}
		addDir(path.Dir(p), 0o755)
		rel := strings.Repeat("../", strings.Count(p, "/")) + "bin/busybox"
		if path.Dir(p) == "bin" {
			rel = "busybox"
		}
		fs = append(fs, file{name: p, mode: 0o777, link: rel})
	}
	fs = append(fs,
		file{name: "etc/passwd", mode: 0o644, body: []byte(busyboxPasswd)},
		file{name: "etc/group", mode: 0o644, body: []byte(busyboxGroup)},
	)
	return fs, nil
}

// layer is a built layer: its gzipped blob and the digest of the uncompressed tar (diff id).
type layer struct {
	blob   []byte
	diffID digest.Digest
}

func buildLayer(files []file) (layer, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: epoch, Uid: f.uid, Gid: f.gid, Format: tar.FormatPAX}
		switch {
		case f.dir:
			h.Typeflag, h.Name = tar.TypeDir, f.name+"/"
		case f.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, f.link
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return layer{}, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return layer{}, err
		}
	}
	if err := tw.Close(); err != nil {
		return layer{}, err
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return layer{}, err
	}
	if err := zw.Close(); err != nil {
		return layer{}, err
	}
	return layer{blob: gz.Bytes(), diffID: digest.FromBytes(raw.Bytes())}, nil
}

// store holds every blob (layers, configs, manifests, indexes) by digest and the tags by
// "repository:tag". Repositories are paths without a registry host: the same store answers
// for any host.
type store struct {
	blobs map[digest.Digest]blob
	tags  map[string]digest.Digest
}

type blob struct {
	mediaType string
	data      []byte
}

func (s *store) put(mediaType string, data []byte) ocispec.Descriptor {
	d := digest.FromBytes(data)
	s.blobs[d] = blob{mediaType: mediaType, data: data}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (s *store) putJSON(mediaType string, v any) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return s.put(mediaType, b), nil
}

// imageSpec describes one platform's image.
type imageSpec struct {
	platform ocispec.Platform
	layers   []layer
	config   ocispec.ImageConfig
}

// manifest stores spec's layers, config and manifest and returns the manifest's descriptor
// (with its platform, for an index).
func (s *store) manifest(spec imageSpec) (ocispec.Descriptor, error) {
	img := ocispec.Image{Created: &epoch, Platform: spec.platform, Config: spec.config,
		RootFS: ocispec.RootFS{Type: "layers"}}
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
	for _, l := range spec.layers {
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, l.diffID)
		m.Layers = append(m.Layers, s.put(ocispec.MediaTypeImageLayerGzip, l.blob))
	}
	var err error
	if m.Config, err = s.putJSON(ocispec.MediaTypeImageConfig, img); err != nil {
		return ocispec.Descriptor{}, err
	}
	d, err := s.putJSON(ocispec.MediaTypeImageManifest, m)
	p := spec.platform
	d.Platform = &p
	return d, err
}

// index stores an index of specs and tags it as each of refs.
func (s *store) index(specs_ []imageSpec, refs ...string) (digest.Digest, error) {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, sp := range specs_ {
		d, err := s.manifest(sp)
		if err != nil {
			return "", err
		}
		idx.Manifests = append(idx.Manifests, d)
	}
	d, err := s.putJSON(ocispec.MediaTypeImageIndex, idx)
	if err != nil {
		return "", err
	}
	for _, r := range refs {
		s.tags[r] = d.Digest
	}
	return d.Digest, nil
}

// marker is the one-file layer of a platform that is never run.
func marker(name string, p ocispec.Platform) (layer, error) {
	return buildLayer([]file{{name: name, mode: 0o755, body: []byte(fmt.Sprintf("%s for %s\n", name, platformString(p)))}})
}

func platformString(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// withOthers returns host plus a marker image for every other platform.
func withOthers(host imageSpec, name string) ([]imageSpec, error) {
	out := []imageSpec{host}
	for _, p := range otherPlatforms {
		if p.Architecture == host.platform.Architecture {
			continue
		}
		l, err := marker(name, p)
		if err != nil {
			return nil, err
		}
		out = append(out, imageSpec{platform: p, layers: []layer{l}, config: ocispec.ImageConfig{Env: []string{pathEnv}}})
	}
	return out, nil
}

// Repositories and tags, served for whatever host a reference names (the proxy's requests) and
// on 127.0.0.1 (the suite's -image-list). The suite sets its busybox, volume-copy-up and
// volume-ownership references in package-level variables, before it reads -image-list, so they
// keep their upstream names and arrive through the proxy like the references its tests
// hard-code; only the references it looks up inside tests (pause) follow -image-list.
const (
	repoBusybox        = "containerd/busybox:1.36"
	repoPause          = "pause:3.10.2"
	repoVolumeCopyUp   = "containerd/volume-copy-up:2.2"
	repoVolumeOwner    = "containerd/volume-ownership:2.1"
	repoAlpine         = "containerd/alpine:3.14.0"
	repoResourceCons   = "e2e-test-images/resource-consumer:1.10"
	repoArgsEscaped    = "args-escaped-test-image-ns:1.0"
	repoNginx          = "containerd/nginx:1.27.0"
	hardPause          = "pause:3.6"                          // TestImagePullWithDistSourceLabel
	hardSomePlatforms  = "e2e-test-images/busybox:1.29-2"     // TestImagePullSomePlatforms
	hardWindowsOnly    = "containerd/windows/nanoserver:1809" // TestImageSupportedBySnapshotter_Error
	busyboxByDigestKey = "BusyBoxByDigest"
)

// build fills a store with every image and returns the suite's image list entries (field of
// integration/images.ImageList -> repository path with tag or digest, host not included).
func build(busybox string) (*store, map[string]string, error) {
	s := &store{blobs: map[digest.Digest]blob{}, tags: map[string]digest.Digest{}}
	bb, err := busyboxFiles(busybox)
	if err != nil {
		return nil, nil, err
	}
	base, err := buildLayer(bb)
	if err != nil {
		return nil, nil, err
	}
	shCfg := ocispec.ImageConfig{Env: []string{pathEnv}, Cmd: []string{"sh"}}

	// busybox (also by digest, and standing in for the images the client suite does not run)
	bbSpecs, err := withOthers(imageSpec{platform: hostPlatform, layers: []layer{base}, config: shCfg}, "busybox")
	if err != nil {
		return nil, nil, err
	}
	bbDigest, err := s.index(bbSpecs, repoBusybox, repoAlpine, repoResourceCons, repoArgsEscaped, repoNginx)
	if err != nil {
		return nil, nil, err
	}
	someSpecs, err := withOthers(imageSpec{platform: hostPlatform, layers: []layer{base}, config: shCfg}, "busybox-e2e")
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.index(someSpecs, hardSomePlatforms); err != nil {
		return nil, nil, err
	}

	// pause: one small static layer per platform
	pl, err := marker("pause", hostPlatform)
	if err != nil {
		return nil, nil, err
	}
	pauseSpecs, err := withOthers(imageSpec{platform: hostPlatform, layers: []layer{pl},
		config: ocispec.ImageConfig{Env: []string{pathEnv}, Entrypoint: []string{"/pause"}}}, "pause")
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.index(pauseSpecs, repoPause, hardPause); err != nil {
		return nil, nil, err
	}

	// volume-copy-up: busybox plus three layers and three volumes (see its Dockerfile upstream)
	vcu := []layer{base}
	for _, f := range [][2]string{
		{"test_dir", "test_file"},
		{"C:/weird_test_dir", "weird_test_file"},
		{":colon_prefixed", "colon_prefixed_file"},
	} {
		l, err := buildLayer([]file{{name: f[0], dir: true, mode: 0o755},
			{name: f[0] + "/" + f[1], mode: 0o644, body: []byte("test_content\n")}})
		if err != nil {
			return nil, nil, err
		}
		vcu = append(vcu, l)
	}
	vcuCfg := shCfg
	vcuCfg.Volumes = map[string]struct{}{"/test_dir": {}, "C:/weird_test_dir": {}, "/:colon_prefixed": {}}
	if _, err := s.index([]imageSpec{{platform: hostPlatform, layers: vcu, config: vcuCfg}}, repoVolumeCopyUp); err != nil {
		return nil, nil, err
	}

	// volume-ownership: /test_dir owned by nobody:nogroup, a setuid /usr/bin/passwd and a bash
	// (here a wrapper around busybox sh) for the user-namespace tests.
	vo, err := buildLayer([]file{
		{name: "test_dir", dir: true, mode: 0o755, uid: 65534, gid: 65534},
		{name: "usr/bin/passwd", mode: 0o4755, body: []byte("#!/bin/sh\necho passwd: not in this image >&2\nexit 1\n")},
		{name: "bin/bash", mode: 0o755, body: []byte("#!/bin/sh\nexec /bin/sh \"$@\"\n")},
	})
	if err != nil {
		return nil, nil, err
	}
	voCfg := ocispec.ImageConfig{Env: []string{pathEnv}, Cmd: []string{"bash"},
		Volumes: map[string]struct{}{"/test_dir": {}}}
	if _, err := s.index([]imageSpec{{platform: hostPlatform, layers: []layer{base, vo}, config: voCfg}}, repoVolumeOwner); err != nil {
		return nil, nil, err
	}

	// a Windows-only image: pulling it for linux must fail
	wl, err := marker("nanoserver", ocispec.Platform{OS: "windows", Architecture: "amd64"})
	if err != nil {
		return nil, nil, err
	}
	if _, err := s.index([]imageSpec{{platform: ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1"},
		layers: []layer{wl}, config: ocispec.ImageConfig{Cmd: []string{"cmd"}}}}, hardWindowsOnly); err != nil {
		return nil, nil, err
	}

	repoOf := func(ref string) string { return ref[:strings.LastIndex(ref, ":")] }
	list := map[string]string{
		"BusyBox":          repoBusybox,
		busyboxByDigestKey: repoOf(repoBusybox) + "@" + bbDigest.String(),
		"Pause":            repoPause,
		"VolumeCopyUp":     repoVolumeCopyUp,
		"VolumeOwnership":  repoVolumeOwner,
		"Alpine":           repoAlpine,
		"ResourceConsumer": repoResourceCons,
		"ArgsEscaped":      repoArgsEscaped,
		"Nginx":            repoNginx,
	}
	return s, list, nil
}
