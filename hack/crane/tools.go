//go:build tools

// Package tools pins the commands built from this module.
package tools

import _ "github.com/google/go-containerregistry/cmd/crane"
