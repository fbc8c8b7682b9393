package seccomp

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// label names a position in a program under construction. Every jump is
// forward: a label is always bound after the jumps that use it.
type label int

type itemKind uint8

const (
	itemInsn  itemKind = iota + 1 // a non-jump instruction
	itemJump                      // ja target
	itemCond                      // conditional jump to jt or jf
	itemLabel                     // binds a label here; emits nothing
)

type item struct {
	kind   itemKind
	insn   bpf.Instruction // itemInsn
	test   bpf.JumpTest    // itemCond: JumpEqual, JumpGreaterThan, JumpGreaterOrEqual or JumpBitsSet
	k      uint32          // itemCond operand
	jt, jf label           // itemCond targets; itemJump uses jt; itemLabel binds jt
	// farT and farF are set by relaxation when a target is more than 255
	// instructions away: the jump then goes through a "ja" trampoline
	// placed right after it.
	farT, farF bool
}

// assembler collects instructions with symbolic forward jumps and lays them
// out so every conditional jump offset fits in 8 bits.
//
// Not safe for concurrent use.
type assembler struct {
	items   []item
	nlabels int
}

func (a *assembler) newLabel() label {
	a.nlabels++
	return label(a.nlabels - 1)
}

func (a *assembler) bind(l label)           { a.items = append(a.items, item{kind: itemLabel, jt: l}) }
func (a *assembler) insn(i bpf.Instruction) { a.items = append(a.items, item{kind: itemInsn, insn: i}) }
func (a *assembler) jump(l label)           { a.items = append(a.items, item{kind: itemJump, jt: l}) }
func (a *assembler) load(off uint32)        { a.insn(bpf.LoadAbsolute{Off: off, Size: 4}) }
func (a *assembler) and(mask uint32)        { a.insn(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mask}) }
func (a *assembler) ret(act action)         { a.insn(bpf.RetConstant{Val: uint32(act)}) }
func (a *assembler) cond(t bpf.JumpTest, k uint32, jt, jf label) {
	a.items = append(a.items, item{kind: itemCond, test: t, k: k, jt: jt, jf: jf})
}

func (it *item) size() int {
	switch it.kind {
	case itemLabel:
		return 0
	case itemCond:
		n := 1
		if it.farT {
			n++
		}
		if it.farF {
			n++
		}
		return n
	}
	return 1
}

// layout returns the position of every label, relaxing conditional jumps
// into trampolines until all short offsets fit. Relaxation only ever adds
// trampolines, so it terminates.
func (a *assembler) layout() ([]int, error) {
	pos := make([]int, a.nlabels)
	for {
		for i := range pos {
			pos[i] = -1
		}
		p := 0
		for i := range a.items {
			if a.items[i].kind == itemLabel {
				pos[a.items[i].jt] = p
			}
			p += a.items[i].size()
		}
		changed := false
		p = 0
		for i := range a.items {
			it := &a.items[i]
			if it.kind == itemCond {
				if pos[it.jt] < 0 || pos[it.jf] < 0 {
					return nil, fmt.Errorf("seccomp: internal error: unbound label")
				}
				if !it.farT && pos[it.jt]-(p+1) > 255 {
					it.farT, changed = true, true
				}
				if !it.farF && pos[it.jf]-(p+1) > 255 {
					it.farF, changed = true, true
				}
			}
			p += it.size()
		}
		if !changed {
			return pos, nil
		}
	}
}

// assemble resolves labels and returns the program.
func (a *assembler) assemble() ([]bpf.Instruction, error) {
	pos, err := a.layout()
	if err != nil {
		return nil, err
	}
	var out []bpf.Instruction
	offset := func(from, to int) (uint32, error) {
		if to < from+1 {
			return 0, fmt.Errorf("seccomp: internal error: backward jump from %d to %d", from, to)
		}
		return uint32(to - from - 1), nil
	}
	for _, it := range a.items {
		p := len(out)
		switch it.kind {
		case itemLabel:
		case itemInsn:
			out = append(out, it.insn)
		case itemJump:
			off, err := offset(p, pos[it.jt])
			if err != nil {
				return nil, err
			}
			out = append(out, bpf.Jump{Skip: off})
		case itemCond:
			tt, tf := pos[it.jt], pos[it.jf]
			tramp := p + 1
			if it.farT {
				tt, tramp = tramp, tramp+1
			}
			if it.farF {
				tf = tramp
			}
			st, err := offset(p, tt)
			if err != nil {
				return nil, err
			}
			sf, err := offset(p, tf)
			if err != nil {
				return nil, err
			}
			if st > 255 || sf > 255 {
				return nil, fmt.Errorf("seccomp: internal error: jump offset %d/%d after relaxation", st, sf)
			}
			out = append(out, bpf.JumpIf{Cond: it.test, Val: it.k, SkipTrue: uint8(st), SkipFalse: uint8(sf)})
			if it.farT {
				off, err := offset(len(out), pos[it.jt])
				if err != nil {
					return nil, err
				}
				out = append(out, bpf.Jump{Skip: off})
			}
			if it.farF {
				off, err := offset(len(out), pos[it.jf])
				if err != nil {
					return nil, err
				}
				out = append(out, bpf.Jump{Skip: off})
			}
		}
	}
	return out, nil
}
