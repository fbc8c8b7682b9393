package main

import (
	"bytes"
	"log"
	"net/http"
	"strconv"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// ServeHTTP is a read-only OCI distribution API over the store: GET/HEAD of /v2/,
// /v2/<name>/manifests/<tag|digest> and /v2/<name>/blobs/<digest>. The host a request names
// does not matter. Anything else is 404 (or 405 for writes), logged.
func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	status := s.serve(w, r)
	log.Printf("%s %s%s -> %d", r.Method, r.Host, r.URL.Path, status)
}

func (s *store) serve(w http.ResponseWriter, r *http.Request) int {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return apiError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "this registry is read-only")
	}
	p := r.URL.Path
	if p == "/v2/" || p == "/v2" {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	}
	if !strings.HasPrefix(p, "/v2/") {
		return apiError(w, http.StatusNotFound, "NOT_FOUND", "not a registry path")
	}
	rest := p[len("/v2/"):]
	if i := strings.LastIndex(rest, "/manifests/"); i > 0 {
		name, ref := rest[:i], rest[i+len("/manifests/"):]
		d, err := digest.Parse(ref)
		if err != nil {
			var ok bool
			if d, ok = s.tags[name+":"+ref]; !ok {
				return apiError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", name+":"+ref)
			}
		}
		return s.send(w, r, d, true)
	}
	if i := strings.LastIndex(rest, "/blobs/"); i > 0 {
		d, err := digest.Parse(rest[i+len("/blobs/"):])
		if err != nil {
			return apiError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
		}
		return s.send(w, r, d, false)
	}
	return apiError(w, http.StatusNotFound, "NOT_FOUND", p)
}

// send writes blob d (Range requests included); manifests carry their media type.
func (s *store) send(w http.ResponseWriter, r *http.Request, d digest.Digest, manifest bool) int {
	b, ok := s.blobs[d]
	if !ok {
		code := "BLOB_UNKNOWN"
		if manifest {
			code = "MANIFEST_UNKNOWN"
		}
		return apiError(w, http.StatusNotFound, code, d.String())
	}
	ct := "application/octet-stream"
	if manifest {
		ct = b.mediaType
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Etag", `"`+d.String()+`"`)
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	http.ServeContent(rec, r, "", epoch, bytes.NewReader(b.data))
	return rec.status
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func apiError(w http.ResponseWriter, status int, code, detail string) int {
	body := `{"errors":[{"code":"` + code + `","message":` + strconv.Quote(detail) + `}]}`
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write([]byte(body))
	return status
}
