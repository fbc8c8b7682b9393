// Command containerd-shim-box-v1-daemon is box's long-lived shim daemon: it
// serves containerd's task API (v3, ttrpc) for one container or one group,
// and answers -info. containerd-shim-box-v1 start runs it; it is installed
// beside that binary and runs the container-side stages from it.
package main

import "github.com/boxrt/containerd-shim-box-v1/shim"

func main() { shim.Main() }
