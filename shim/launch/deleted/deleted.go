//go:build linux && cgo

package deleted

/*
#cgo CFLAGS: -Wall -Werror -I${SRCDIR}/../include
#include <stdlib.h>
const char *box_deleted_response(const char *record, size_t len, const char *id, size_t *rlen);
*/
import "C"

import "unsafe"

// constructorResponse is the constructor's reading of a record, for the
// tests: what it prints for task id, and whether it takes the shortcut.
func constructorResponse(record []byte, id string) ([]byte, bool) {
	cid := C.CString(id)
	defer C.free(unsafe.Pointer(cid))
	var p *C.char
	if len(record) > 0 {
		p = (*C.char)(unsafe.Pointer(&record[0]))
	}
	var n C.size_t
	r := C.box_deleted_response(p, C.size_t(len(record)), cid, &n)
	if r == nil {
		return nil, false
	}
	return C.GoBytes(unsafe.Pointer(r), C.int(n)), true
}
