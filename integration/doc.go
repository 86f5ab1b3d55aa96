// Package integration holds end-to-end tests of MegaContext: they build the
// real megacontext binary, run it as a separate process on loopback in front
// of the fakellama fixture (a scriptable llama.cpp/vLLM/OpenAI-like
// upstream), and check the user stories through the public HTTP API only.
//
// Run them with:
//
//	go test -count=1 ./integration/...
//
// The package itself has no non-test code; the fixture lives in
// integration/fakellama.
package integration
