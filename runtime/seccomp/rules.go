package seccomp

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxArgs is the number of syscall arguments in seccomp_data.
const maxArgs = 6

// cond is one argument comparison, validated.
type cond struct {
	index uint
	op    specs.LinuxSeccompOperator
	// value is the operand; for MASKED_EQ it is the mask and valueTwo the
	// value that arg&mask must equal (libseccomp's datum_a and datum_b).
	value, valueTwo uint64
}

// rule matches when all of its conds hold.
type rule struct {
	conds []cond
	act   action
}

// entry is one validated linux.seccomp.syscalls[] element.
type entry struct {
	names []string
	act   action
	// alts are the rules the entry stands for, any of which may match. An
	// entry without args has a single rule without conds.
	alts []rule
}

var knownOps = map[specs.LinuxSeccompOperator]bool{
	specs.OpNotEqual: true, specs.OpLessThan: true, specs.OpLessEqual: true, specs.OpEqualTo: true,
	specs.OpGreaterEqual: true, specs.OpGreaterThan: true, specs.OpMaskedEqual: true,
}

// parseEntry validates s.Syscalls[i].
//
// Conditions of one entry are ANDed, unless two of them test the same
// argument: then, as runc does, every condition becomes a rule of its own
// and they are ORed (that is how profiles express "arg0 is A or B").
func parseEntry(i int, sc specs.LinuxSyscall) (entry, error) {
	field := fmt.Sprintf("linux.seccomp.syscalls[%d]", i)
	if len(sc.Names) == 0 {
		return entry{}, fmt.Errorf("%s.names: empty: %w", field, errdefs.ErrInvalidArgument)
	}
	for j, n := range sc.Names {
		if n == "" {
			return entry{}, fmt.Errorf("%s.names[%d]: empty name: %w", field, j, errdefs.ErrInvalidArgument)
		}
	}
	act, err := parseAction(field+".action", sc.Action, sc.ErrnoRet)
	if err != nil {
		return entry{}, err
	}
	if act == retUserNotif {
		for j, n := range sc.Names {
			// The container's init reports the listener fd with write(2)
			// after loading the filter; notifying on write would hang it.
			if n == "write" {
				return entry{}, fmt.Errorf("%s.names[%d]: %s cannot be used for write: %w", field, j, specs.ActNotify, errdefs.ErrInvalidArgument)
			}
		}
	}
	var conds []cond
	var perArg [maxArgs]int
	split := false
	for j, a := range sc.Args {
		if a.Index >= maxArgs {
			return entry{}, fmt.Errorf("%s.args[%d].index: %d is not below %d: %w", field, j, a.Index, maxArgs, errdefs.ErrInvalidArgument)
		}
		if !knownOps[a.Op] {
			return entry{}, fmt.Errorf("%s.args[%d].op: unknown operator %q: %w", field, j, a.Op, errdefs.ErrInvalidArgument)
		}
		perArg[a.Index]++
		split = split || perArg[a.Index] > 1
		conds = append(conds, cond{index: a.Index, op: a.Op, value: a.Value, valueTwo: a.ValueTwo})
	}
	e := entry{names: sc.Names, act: act}
	switch {
	case len(conds) == 0:
		e.alts = []rule{{act: act}}
	case split:
		for _, c := range conds {
			e.alts = append(e.alts, rule{conds: []cond{c}, act: act})
		}
	default:
		e.alts = []rule{{conds: conds, act: act}}
	}
	return e, nil
}

// chain is what the filter does for one syscall number: try rules in order,
// return the action of the first that matches, else final.
type chain struct {
	rules []rule
	final action
	// args32 selects 32-bit argument compares (see arch.args32).
	args32 bool
}

// key identifies chains that compile to the same code.
func (c *chain) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%t/%#x", c.args32, uint32(c.final))
	for _, r := range c.rules {
		fmt.Fprintf(&b, "|%#x", uint32(r.act))
		for _, cd := range r.conds {
			fmt.Fprintf(&b, ",%d%s%#x/%#x", cd.index, cd.op, cd.value, cd.valueTwo)
		}
	}
	return b.String()
}

// archRules is the rule table of one ABI.
type archRules struct {
	arch   *arch
	chains map[uint32]*chain // by syscall number; a number not here gets the default action
	maxNr  uint32            // highest number named by the profile (resolved), valid if named
	named  bool
}

// buildArchRules resolves the entries' names on a and applies precedence:
//
//   - Rules with conditions come first, in spec order; the first that
//     matches decides.
//   - Then the first unconditional rule for the syscall, in spec order, is
//     the catch-all; later unconditional rules for it are ignored.
//   - With neither matching, the default action applies.
//
// Unlike libseccomp, an unconditional rule does not erase conditional rules
// with other actions for the same syscall: "allow clone, but not with
// CLONE_NEWUSER" keeps its exception.
//
// Names a does not know are skipped, as runc does.
func buildArchRules(a *arch, entries []entry, def action) *archRules {
	ar := &archRules{arch: a, chains: map[uint32]*chain{}}
	hasFinal := map[uint32]bool{}
	for _, e := range entries {
		for _, name := range e.names {
			nr, ok := a.syscalls[name]
			if !ok {
				continue
			}
			if !ar.named || nr > ar.maxNr {
				ar.maxNr, ar.named = nr, true
			}
			c := ar.chains[nr]
			if c == nil {
				c = &chain{final: def, args32: a.args32}
				ar.chains[nr] = c
			}
			for _, r := range e.alts {
				switch {
				case len(r.conds) > 0:
					c.rules = append(c.rules, r)
				case !hasFinal[nr]:
					c.final, hasFinal[nr] = r.act, true
				}
			}
		}
	}
	for _, c := range ar.chains {
		// A trailing rule with the final action changes nothing.
		for len(c.rules) > 0 && c.rules[len(c.rules)-1].act == c.final {
			c.rules = c.rules[:len(c.rules)-1]
		}
	}
	return ar
}
