package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ConfigName is the name of the spec file inside a bundle.
const ConfigName = "config.json"

// Load reads and decodes <bundle>/config.json. It does not validate the
// spec; NewPlan does.
//
// A missing file is errdefs.ErrNotFound; a file that is not a JSON spec is
// errdefs.ErrInvalidArgument. Both errors name the file.
func Load(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, ConfigName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		// err is an *fs.PathError and names the file.
		return nil, fmt.Errorf("load spec: %w: %w", errdefs.ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("load spec %s: %w: %w", path, errdefs.ErrInvalidArgument, err)
	}
	return &s, nil
}

// FieldError reports a spec field that fails validation. It wraps
// errdefs.ErrInvalidArgument, so errdefs.IsInvalidArgument reports true.
type FieldError struct {
	// Field is the JSON path of the offending field, as written in
	// config.json: "linux.namespaces[2].type".
	Field string
	// Reason says what is wrong with the field's value.
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap classifies every FieldError as an invalid argument.
func (e *FieldError) Unwrap() error { return errdefs.ErrInvalidArgument }

// fieldErrorf returns a *FieldError for field with a formatted reason.
func fieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
