// Package examples holds programs that use natsse the way an application
// does (a Go publisher and subscriber, a Node, a Python and a shell
// subscriber, a browser page), and the tests that run each of them against
// the real binary. See README.md in this directory.
package examples
