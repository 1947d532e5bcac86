//go:build !unix

package file

func applyTestUmask() {}
