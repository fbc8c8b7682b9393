package oci

import (
	"strings"
	"testing"
)

// TestParseCPUList checks the list format, runc's leniency (spaces, empty
// elements) and what is refused.
func TestParseCPUList(t *testing.T) {
	good := map[string]string{
		"0":                "0",
		"0-3,7":            "0-3,7",
		"7,0-3":            "0-3,7",
		" 1 , 2 ":          "1-2",
		"0,,1,":            "0-1",
		"3-3":              "3",
		"0-1,1-2":          "0-2",
		"65536":            "65536",
		"64,127-128":       "64,127-128",
		"0001":             "1",
		"1,3,5,7,9,11,13":  "1,3,5,7,9,11,13",
		"100-103,0-0,2000": "0,100-103,2000",
	}
	for in, want := range good {
		set, err := ParseCPUList(in)
		if err != nil {
			t.Errorf("ParseCPUList(%q): %v", in, err)
			continue
		}
		if got := FormatCPUList(set); got != want {
			t.Errorf("ParseCPUList(%q) = %s, want %s", in, got, want)
		}
	}
	bad := map[string]string{
		",":                    "no members",
		" , ":                  "no members",
		"a":                    "not a number",
		"-1":                   "not a number",
		"1-":                   "not a number",
		"-":                    "not a number",
		"3-1":                  "above its end",
		"+1":                   "not a number",
		"1 2":                  "not a number",
		"0x1":                  "not a number",
		"65537":                "above the limit",
		"0-70000":              "above the limit",
		"1-2-3":                "not a number",
		"99999999999999999999": "above the limit",
	}
	for in, want := range bad {
		_, err := ParseCPUList(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCPUList(%q) = %v, want an error containing %q", in, err, want)
		}
	}
	if set, err := ParseCPUList(""); set != nil || err != nil {
		t.Errorf(`ParseCPUList("") = %v, %v; want nil, nil`, set, err)
	}
}

// FuzzParseCPUList checks that any string either fails or gives a
// non-empty mask whose canonical form parses back to the same mask, and
// that nothing above MaxCPU is ever set.
func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0-3,7", "0", "1,2", " 4 - 5", "3-1", "", ",", "65536", "0-65536", "a", "1--2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseCPUList(s)
		if err != nil || s == "" {
			return
		}
		if set.Count() == 0 {
			t.Fatalf("ParseCPUList(%q) gave an empty set and no error", s)
		}
		canon := FormatCPUList(set)
		again, err := ParseCPUList(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, s, err)
		}
		if FormatCPUList(again) != canon {
			t.Fatalf("%q -> %q -> %q", s, canon, FormatCPUList(again))
		}
		if len(set) > MaxCPU/64+1 {
			t.Fatalf("ParseCPUList(%q): mask of %d words exceeds MaxCPU", s, len(set))
		}
	})
}
