// Package xdg finds sdctl's per-user directories by the XDG Base Directory rules: an absolute
// $XDG_*_HOME wins, otherwise the usual place under the home directory.
package xdg

import (
	"fmt"
	"os"
	"path/filepath"
)

// ConfigHome is $XDG_CONFIG_HOME, else ~/.config.
func ConfigHome() (string, error) { return dir("XDG_CONFIG_HOME", ".config") }

// DataHome is $XDG_DATA_HOME, else ~/.local/share.
func DataHome() (string, error) { return dir("XDG_DATA_HOME", filepath.Join(".local", "share")) }

// StateHome is $XDG_STATE_HOME, else ~/.local/state.
func StateHome() (string, error) { return dir("XDG_STATE_HOME", filepath.Join(".local", "state")) }

func dir(env, fallback string) (string, error) {
	if d := os.Getenv(env); filepath.IsAbs(d) {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no home directory to find %s in: %w", env, err)
	}
	return filepath.Join(home, fallback), nil
}
