//go:build wasip1

package sdk

import (
	"unsafe"
	_ "unsafe" // go:linkname
)

// Built with -tags faketime (see build), the Go runtime puts a playback
// header before every write to stdout and stderr, which would garble its own
// panic report. So a panic in a plugin is reported here: the message and the
// stack go to stderr with a plain fd_write, then the instance traps
// (`unreachable`, as a Go fatal error does).

//go:wasmimport wasi_snapshot_preview1 fd_write
//go:noescape
func fdWrite(fd int32, iovs unsafe.Pointer, iovsLen int32, nwritten unsafe.Pointer) int32

//go:linkname abort runtime.abort
func abort()

func writeStderr(text string) {
	if len(text) == 0 {
		return
	}
	// struct ciovec { buf: u32, buf_len: u32 }
	buf := []byte(text)
	iov := [2]uint32{uint32(uintptr(unsafe.Pointer(&buf[0]))), uint32(len(buf))}
	var n uint32
	fdWrite(2, unsafe.Pointer(&iov), 1, unsafe.Pointer(&n))
}

func crash(report string) {
	writeStderr(report)
	abort()
}
