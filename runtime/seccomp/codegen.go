package seccomp

import (
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
)

// Offsets in struct seccomp_data (all loads are 32-bit, native endian).
const (
	offNr   = 0
	offArch = 4
	offArgs = 16 // args[i] at offArgs+8*i: low word first on little-endian
)

// Program shape:
//
//	ld [arch]
//	jeq AUDIT_ARCH_X86_64 -> x86_64 ; jeq AUDIT_ARCH_I386 -> i386 (if listed)
//	ret KILL_PROCESS                              (unlisted ABI)
//	x86_64: ld [nr]; binary search over number ranges of x86_64 and, from
//	        0x40000000 up, x32 (or KILL_PROCESS when x32 is not listed)
//	i386:   ld [nr]; binary search over i386 number ranges
//	chains: per syscall with argument rules, the compares in order
//	rets:   one ret per distinct action
//
// A range's target is a chain or a ret: the default action for numbers the
// profile does not name, ENOSYS above the highest number it names (when the
// default is not permissive), or the syscall's action.

// interval is the range of syscall numbers from start up to the next
// interval's start, all going to target.
type interval struct {
	start  uint32
	target label
}

type generator struct {
	a      assembler
	rets   map[action]label
	order  []action // rets in creation order, for a deterministic program
	chains map[string]label
	bodies []*chain // chains to emit, in creation order
	labels []label
}

func newGenerator() *generator {
	return &generator{rets: map[action]label{}, chains: map[string]label{}}
}

func (g *generator) ret(act action) label {
	l, ok := g.rets[act]
	if !ok {
		l = g.a.newLabel()
		g.rets[act] = l
		g.order = append(g.order, act)
	}
	return l
}

// target returns where syscalls with chain c go: straight to a ret when c
// has no argument rules.
func (g *generator) target(c *chain) label {
	if len(c.rules) == 0 {
		return g.ret(c.final)
	}
	k := c.key()
	l, ok := g.chains[k]
	if !ok {
		l = g.a.newLabel()
		g.chains[k] = l
		g.bodies = append(g.bodies, c)
		g.labels = append(g.labels, l)
	}
	return l
}

// intervals maps ar's number range to targets. enosys enables the ENOSYS
// range above the highest named number.
func (g *generator) intervals(ar *archRules, def action, enosys bool) []interval {
	nrs := make([]uint32, 0, len(ar.chains))
	for nr := range ar.chains {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })

	var out []interval
	// add starts a range at start, replacing a range that started there
	// and merging with the one before if it has the same target.
	add := func(start uint32, t label) {
		for len(out) > 0 && out[len(out)-1].start == start {
			out = out[:len(out)-1]
		}
		if n := len(out); n > 0 && out[n-1].target == t {
			return
		}
		out = append(out, interval{start, t})
	}
	lo := ar.arch.lo
	deflt := g.ret(def)
	add(lo, deflt)
	for _, nr := range nrs {
		if nr < lo || nr > ar.arch.hi {
			continue // cannot happen with consistent tables
		}
		add(nr, g.target(ar.chains[nr]))
		if nr < ar.arch.hi {
			add(nr+1, deflt)
		}
	}
	if enosys && ar.named && ar.maxNr < ar.arch.hi {
		add(ar.maxNr+1, g.ret(retENOSYS))
	}
	return out
}

// search emits a binary search over iv; A holds the syscall number.
func (g *generator) search(iv []interval) {
	if len(iv) == 1 {
		g.a.jump(iv[0].target)
		return
	}
	g.node(iv, g.a.newLabel())
}

func (g *generator) node(iv []interval, self label) {
	g.a.bind(self)
	mid := len(iv) / 2
	left, right := iv[:mid], iv[mid:]
	sub := func(part []interval) label {
		if len(part) == 1 {
			return part[0].target
		}
		return g.a.newLabel()
	}
	lt, rt := sub(left), sub(right)
	g.a.cond(bpf.JumpGreaterOrEqual, iv[mid].start, rt, lt)
	if len(left) > 1 {
		g.node(left, lt)
	}
	if len(right) > 1 {
		g.node(right, rt)
	}
}

// chain emits c's argument rules at l.
func (g *generator) chain(c *chain, l label) {
	g.a.bind(l)
	for _, r := range c.rules {
		next := g.a.newLabel()
		for i, cd := range r.conds {
			var pass label
			if i == len(r.conds)-1 {
				pass = g.ret(r.act)
			} else {
				pass = g.a.newLabel()
			}
			g.compare(cd, c.args32, pass, next)
			if i < len(r.conds)-1 {
				g.a.bind(pass)
			}
		}
		g.a.bind(next)
	}
	g.a.jump(g.ret(c.final))
}

// compare emits code that jumps to pass if cd holds, else to fail.
//
// 64-bit arguments are compared as two 32-bit words: the high words decide
// unless they are equal, then the low words do. With args32, only the low
// word is compared, against the low word of the operands.
func (g *generator) compare(cd cond, args32 bool, pass, fail label) {
	a := &g.a
	offLo := offArgs + 8*uint32(cd.index)
	offHi := offLo + 4
	hv, lv := uint32(cd.value>>32), uint32(cd.value)
	hv2, lv2 := uint32(cd.valueTwo>>32), uint32(cd.valueTwo)

	if !args32 {
		lo := a.newLabel()
		switch cd.op {
		case specs.OpMaskedEqual:
			switch {
			case hv == 0 && hv2 == 0: // high word of arg&mask is 0: always equal
			case hv == 0:
				a.jump(fail)
			default:
				a.load(offHi)
				a.and(hv)
				a.cond(bpf.JumpEqual, hv2, lo, fail)
			}
		case specs.OpEqualTo:
			a.load(offHi)
			a.cond(bpf.JumpEqual, hv, lo, fail)
		case specs.OpNotEqual:
			a.load(offHi)
			a.cond(bpf.JumpEqual, hv, lo, pass)
		default: // ordering: a greater high word decides, a smaller one too
			gt, lt := pass, fail
			if cd.op == specs.OpLessThan || cd.op == specs.OpLessEqual {
				gt, lt = fail, pass
			}
			eq := a.newLabel()
			a.load(offHi)
			a.cond(bpf.JumpGreaterThan, hv, gt, eq)
			a.bind(eq)
			a.cond(bpf.JumpEqual, hv, lo, lt)
		}
		a.bind(lo)
	}

	a.load(offLo)
	switch cd.op {
	case specs.OpMaskedEqual:
		if lv != 0xffffffff {
			a.and(lv)
		}
		a.cond(bpf.JumpEqual, lv2, pass, fail)
	case specs.OpEqualTo:
		a.cond(bpf.JumpEqual, lv, pass, fail)
	case specs.OpNotEqual:
		a.cond(bpf.JumpEqual, lv, fail, pass)
	case specs.OpGreaterThan:
		a.cond(bpf.JumpGreaterThan, lv, pass, fail)
	case specs.OpGreaterEqual:
		a.cond(bpf.JumpGreaterOrEqual, lv, pass, fail)
	case specs.OpLessThan:
		a.cond(bpf.JumpGreaterOrEqual, lv, fail, pass)
	case specs.OpLessEqual:
		a.cond(bpf.JumpGreaterThan, lv, fail, pass)
	}
}

// generate emits the whole program for the given ABIs' rule tables
// (tables[0] is x86_64).
func generate(tables []*archRules, def action, enosys bool) ([]bpf.Instruction, error) {
	g := newGenerator()
	var x86_64, x32, i386 *archRules
	for _, t := range tables {
		switch t.arch {
		case archX86_64:
			x86_64 = t
		case archX32:
			x32 = t
		case archI386:
			i386 = t
		}
	}

	// AUDIT_ARCH_X86_64 covers x86_64 below the x32 bit and x32 above it.
	ivX86_64 := g.intervals(x86_64, def, enosys)
	if x32 != nil {
		ivX86_64 = append(ivX86_64, g.intervals(x32, def, enosys)...)
	} else {
		ivX86_64 = append(ivX86_64, interval{x32Bit, g.ret(retBadArch)})
	}
	var ivI386 []interval
	if i386 != nil {
		ivI386 = g.intervals(i386, def, enosys)
	}

	a := &g.a
	secX86_64, secI386, bad := a.newLabel(), a.newLabel(), g.ret(retBadArch)
	a.load(offArch)
	if i386 == nil {
		a.cond(bpf.JumpEqual, archX86_64.audit, secX86_64, bad)
	} else {
		next := a.newLabel()
		a.cond(bpf.JumpEqual, archX86_64.audit, secX86_64, next)
		a.bind(next)
		a.cond(bpf.JumpEqual, archI386.audit, secI386, bad)
	}
	a.bind(secX86_64)
	a.load(offNr)
	g.search(ivX86_64)
	if i386 != nil {
		a.bind(secI386)
		a.load(offNr)
		g.search(ivI386)
	}
	for i, c := range g.bodies {
		g.chain(c, g.labels[i])
	}
	for _, act := range g.order {
		a.bind(g.rets[act])
		a.ret(act)
	}
	return a.assemble()
}
