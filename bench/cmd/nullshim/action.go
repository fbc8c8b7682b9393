package main

// The start and delete actions are answered by a C constructor (action.c) before the Go
// runtime starts.

// #cgo CFLAGS: -Wall -O2
import "C"
