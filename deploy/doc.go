// Package deploy holds the tests of natsse's deployment artefacts: the Helm
// chart under helm/natsse (rendered with Helm's library), and the nginx and
// Caddy configurations under nginx/ and caddy/ (run by the real proxies in
// front of the natsse binary). It is its own module so that Helm and the
// Kubernetes API types stay out of natsse's go.mod.
package deploy
