// Package deploy holds the tests of natsse's deployment artefacts (the Helm
// chart under helm/natsse). It is its own module so that Helm and the
// Kubernetes API types stay out of natsse's go.mod.
package deploy
