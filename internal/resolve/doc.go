// Package resolve chooses the instance that `sdctl resolve` prints and rewrites a URL to point
// at it. Strategies are first, random, weighted and round-robin; round-robin keeps a small
// per-user counter file so that successive runs of the CLI take turns across instances.
//
// The package works on instances a registry already returned; it neither queries nor prints.
package resolve
