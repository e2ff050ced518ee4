// Pins the Metacontroller binary built for the e2e tests (see ../build.sh).
// Release v4.17.2 = commit 76b818bdc67ba56570abe5f69f714d56c0ff5c52. Upstream's go.mod
// names the module `metacontroller`, so it is required under that name and replaced by
// the GitHub path at a pseudo-version (v4.* tags are not valid versions for that path).
module e2e/metacontroller

go 1.26.0

require metacontroller v1.5.21-0.20260813213314-76b818bdc67b

replace metacontroller => github.com/metacontroller/metacontroller v1.5.21-0.20260813213314-76b818bdc67b

// TODO: copy upstream v4.17.2's own `replace (...)` block here (a dependency's replaces
// do not apply to this module), then run `go mod tidy` to write go.sum. Not done yet:
// the Go module proxy refuses this module (403 "This module version is not available"),
// so its go.mod could not be read. Older upstream commits pin k8s.io/apiextensions-apiserver,
// k8s.io/apimachinery, k8s.io/client-go (and golang.org/x/net) there; v4.17.2 uses client-go v0.36.3.
