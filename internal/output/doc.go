// Package output writes command results to stdout in the format the user chose: aligned tables
// for people, tab-separated text for pipes, JSON, JSON lines, YAML, or a Go template.
//
// Nothing here decides what a command prints, only how: commands build a value or a Table and
// hand it to a Printer or one of the writers, which write to the stream they are given.
package output
