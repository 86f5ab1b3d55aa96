package native

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego"
)

// C layouts of the structs passed or returned by value, for the pinned
// build (include/llama.h of llama.cpp 0.5.0-dev). Padding is explicit;
// layoutErrors checks the Go side at run time and verify checks the C side.

// modelParams mirrors struct llama_model_params (80 bytes).
type modelParams struct {
	Devices                  uintptr // ggml_backend_dev_t *
	TensorBuftOverrides      uintptr // const struct llama_model_tensor_buft_override *
	NGPULayers               int32
	SplitMode                int32 // enum llama_split_mode
	LoadMode                 int32 // enum llama_load_mode
	LazyMode                 int32 // enum llama_lazy_mode
	MainGPU                  int32
	_                        [4]byte
	TensorSplit              uintptr // const float *
	ProgressCallback         uintptr // llama_progress_callback
	ProgressCallbackUserData uintptr
	KVOverrides              uintptr // const struct llama_model_kv_override *
	VocabOnly                bool
	CheckTensors             bool
	UseExtraBufts            bool
	NoHost                   bool
	NoAlloc                  bool
	LoadMTP                  bool
	_                        [2]byte
}

// contextParams mirrors struct llama_context_params (160 bytes).
type contextParams struct {
	NCtx              uint32
	NBatch            uint32
	NUbatch           uint32
	NSeqMax           uint32
	NRsSeq            uint32
	NOutputsMax       uint32
	NOutputsMaxPerSeq uint32
	NThreads          int32
	NThreadsBatch     int32
	CtxType           int32 // enum llama_context_type
	RopeScalingType   int32 // enum llama_rope_scaling_type
	PoolingType       int32 // enum llama_pooling_type
	AttentionType     int32 // enum llama_attention_type
	FlashAttnType     int32 // enum llama_flash_attn_type
	RopeFreqBase      float32
	RopeFreqScale     float32
	YarnExtFactor     float32
	YarnAttnFactor    float32
	YarnBetaFast      float32
	YarnBetaSlow      float32
	YarnOrigCtx       uint32
	DefragThold       float32
	CbEval            uintptr
	CbEvalUserData    uintptr
	TypeK             int32 // enum ggml_type
	TypeV             int32 // enum ggml_type
	AbortCallback     uintptr
	AbortCallbackData uintptr
	Embeddings        bool
	OffloadKQV        bool
	NoPerf            bool
	OpOffload         bool
	SwaFull           bool
	KVUnified         bool
	_                 [2]byte
	Samplers          uintptr // struct llama_sampler_seq_config *
	NSamplers         uintptr // size_t
	CtxOther          uintptr // struct llama_context *
}

// batch mirrors struct llama_batch (56 bytes). Its arrays are allocated
// by llama_batch_init in C memory.
type batch struct {
	NTokens int32
	_       [4]byte
	Token   *int32
	Embd    *float32
	Pos     *int32
	NSeqID  *int32
	SeqID   **int32
	Logits  *int8
}

// chatMessage mirrors struct llama_chat_message.
type chatMessage struct {
	Role    *byte
	Content *byte
}

// Enum values of the pinned build.
const (
	poolingUnspecified = -1
	poolingNone        = 0
	poolingMean        = 1
	poolingCLS         = 2
	poolingLast        = 3

	ggmlTypeF16 = 1

	ggmlLogLevelError = 4
	ggmlLogLevelCont  = 5
)

// field is one expected C field: its Go offset must equal off.
type field struct {
	name      string
	goOff, at uintptr
}

// layoutErrors checks the Go mirrors against the C layouts of the pinned
// headers, so that an edit of a mirror that breaks the ABI fails loudly.
func layoutErrors() []string {
	var errs []string
	size := func(name string, got, want uintptr) {
		if got != want {
			errs = append(errs, fmt.Sprintf("sizeof(%s) = %d, want %d", name, got, want))
		}
	}
	var mp modelParams
	var cp contextParams
	var b batch
	size("llama_model_params", unsafe.Sizeof(mp), 80)
	size("llama_context_params", unsafe.Sizeof(cp), 160)
	size("llama_batch", unsafe.Sizeof(b), 56)
	size("llama_chat_message", unsafe.Sizeof(chatMessage{}), 16)
	for _, f := range []field{
		{"llama_model_params.n_gpu_layers", unsafe.Offsetof(mp.NGPULayers), 16},
		{"llama_model_params.main_gpu", unsafe.Offsetof(mp.MainGPU), 32},
		{"llama_model_params.tensor_split", unsafe.Offsetof(mp.TensorSplit), 40},
		{"llama_model_params.kv_overrides", unsafe.Offsetof(mp.KVOverrides), 64},
		{"llama_model_params.vocab_only", unsafe.Offsetof(mp.VocabOnly), 72},
		{"llama_model_params.load_mtp", unsafe.Offsetof(mp.LoadMTP), 77},
		{"llama_context_params.n_threads", unsafe.Offsetof(cp.NThreads), 28},
		{"llama_context_params.pooling_type", unsafe.Offsetof(cp.PoolingType), 44},
		{"llama_context_params.rope_freq_base", unsafe.Offsetof(cp.RopeFreqBase), 56},
		{"llama_context_params.cb_eval", unsafe.Offsetof(cp.CbEval), 88},
		{"llama_context_params.type_k", unsafe.Offsetof(cp.TypeK), 104},
		{"llama_context_params.abort_callback", unsafe.Offsetof(cp.AbortCallback), 112},
		{"llama_context_params.embeddings", unsafe.Offsetof(cp.Embeddings), 128},
		{"llama_context_params.kv_unified", unsafe.Offsetof(cp.KVUnified), 133},
		{"llama_context_params.samplers", unsafe.Offsetof(cp.Samplers), 136},
		{"llama_context_params.ctx_other", unsafe.Offsetof(cp.CtxOther), 152},
		{"llama_batch.token", unsafe.Offsetof(b.Token), 8},
		{"llama_batch.logits", unsafe.Offsetof(b.Logits), 48},
	} {
		if f.goOff != f.at {
			errs = append(errs, fmt.Sprintf("offsetof(%s) = %d, want %d", f.name, f.goOff, f.at))
		}
	}
	return errs
}

// functions holds the C functions the bindings call. Opaque C handles are
// uintptr; they always point to C memory.
type functions struct {
	ggmlBackendDevCount        func() uintptr
	ggmlBackendLoadAllFromPath func(dir string)

	llamaVersion     func() string
	llamaBackendInit func()
	llamaLogSet      func(cb, userData uintptr)

	// Struct returns are bound with an explicit hidden result pointer
	// (System V sret) so that a larger struct from another build can be
	// measured instead of overflowing a Go value.
	modelDefaultParams   func(out unsafe.Pointer) unsafe.Pointer
	contextDefaultParams func(out unsafe.Pointer) unsafe.Pointer
	batchInit            func(out *batch, nTokens, embd, nSeqMax int32) unsafe.Pointer
	batchFree            func(b batch)

	modelLoadFromFile  func(path string, p modelParams) uintptr
	modelFree          func(model uintptr)
	modelGetVocab      func(model uintptr) uintptr
	modelNEmbd         func(model uintptr) int32
	modelNCtxTrain     func(model uintptr) int32
	modelHasEncoder    func(model uintptr) bool
	modelHasDecoder    func(model uintptr) bool
	modelChatTemplate  func(model uintptr, name *byte) *byte
	modelMetaValStr    func(model uintptr, key string, buf *byte, size uintptr) int32
	modelDesc          func(model uintptr, buf *byte, size uintptr) int32
	initFromModel      func(model uintptr, p contextParams) uintptr
	free               func(ctx uintptr)
	nCtx               func(ctx uintptr) uint32
	nBatch             func(ctx uintptr) uint32
	nSeqMax            func(ctx uintptr) uint32
	getMemory          func(ctx uintptr) uintptr
	memoryClear        func(mem uintptr, data bool)
	memorySeqRm        func(mem uintptr, seq, p0, p1 int32) bool
	decode             func(ctx uintptr, b batch) int32
	getEmbeddingsSeq   func(ctx uintptr, seq int32) *float32
	getEmbeddingsIth   func(ctx uintptr, i int32) *float32
	poolingType        func(ctx uintptr) int32
	tokenize           func(vocab uintptr, text *byte, textLen int32, tokens *int32, nMax int32, addSpecial, parseSpecial bool) int32
	tokenToPiece       func(vocab uintptr, token int32, buf *byte, length int32, lstrip int32, special bool) int32
	vocabIsEOG         func(vocab uintptr, token int32) bool
	vocabNTokens       func(vocab uintptr) int32
	vocabType          func(vocab uintptr) int32
	chatApplyTemplate  func(tmpl *byte, chat *chatMessage, n uintptr, addAss bool, buf *byte, length int32) int32
	samplerChainInit   func(noPerf bool) uintptr // by-value struct { bool no_perf; }
	samplerChainAdd    func(chain, smpl uintptr)
	samplerInitGreedy  func() uintptr
	samplerInitDist    func(seed uint32) uintptr
	samplerInitTopK    func(k int32) uintptr
	samplerInitTopP    func(p float32, minKeep uintptr) uintptr
	samplerInitMinP    func(p float32, minKeep uintptr) uintptr
	samplerInitTemp    func(t float32) uintptr
	samplerSample      func(smpl, ctx uintptr, idx int32) int32
	samplerFree        func(smpl uintptr)
	maxParallelSeqs    func() uintptr
	llamaCommonCommit  func() string
	hasLlamaCommonFunc bool
}

// register resolves every function; a missing symbol is an ABI mismatch.
func (l *Library) register() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: registering functions: %v", ErrABIMismatch, r)
		}
	}()
	f := &l.fn
	table := []struct {
		h    uintptr
		name string
		fptr any
	}{
		{l.ggml, "ggml_backend_dev_count", &f.ggmlBackendDevCount},
		{l.ggml, "ggml_backend_load_all_from_path", &f.ggmlBackendLoadAllFromPath},
		{l.llama, "llama_version", &f.llamaVersion},
		{l.llama, "llama_backend_init", &f.llamaBackendInit},
		{l.llama, "llama_log_set", &f.llamaLogSet},
		{l.llama, "llama_model_default_params", &f.modelDefaultParams},
		{l.llama, "llama_context_default_params", &f.contextDefaultParams},
		{l.llama, "llama_batch_init", &f.batchInit},
		{l.llama, "llama_batch_free", &f.batchFree},
		{l.llama, "llama_model_load_from_file", &f.modelLoadFromFile},
		{l.llama, "llama_model_free", &f.modelFree},
		{l.llama, "llama_model_get_vocab", &f.modelGetVocab},
		{l.llama, "llama_model_n_embd", &f.modelNEmbd},
		{l.llama, "llama_model_n_ctx_train", &f.modelNCtxTrain},
		{l.llama, "llama_model_has_encoder", &f.modelHasEncoder},
		{l.llama, "llama_model_has_decoder", &f.modelHasDecoder},
		{l.llama, "llama_model_chat_template", &f.modelChatTemplate},
		{l.llama, "llama_model_meta_val_str", &f.modelMetaValStr},
		{l.llama, "llama_model_desc", &f.modelDesc},
		{l.llama, "llama_init_from_model", &f.initFromModel},
		{l.llama, "llama_free", &f.free},
		{l.llama, "llama_n_ctx", &f.nCtx},
		{l.llama, "llama_n_batch", &f.nBatch},
		{l.llama, "llama_n_seq_max", &f.nSeqMax},
		{l.llama, "llama_get_memory", &f.getMemory},
		{l.llama, "llama_memory_clear", &f.memoryClear},
		{l.llama, "llama_memory_seq_rm", &f.memorySeqRm},
		{l.llama, "llama_decode", &f.decode},
		{l.llama, "llama_get_embeddings_seq", &f.getEmbeddingsSeq},
		{l.llama, "llama_get_embeddings_ith", &f.getEmbeddingsIth},
		{l.llama, "llama_pooling_type", &f.poolingType},
		{l.llama, "llama_tokenize", &f.tokenize},
		{l.llama, "llama_token_to_piece", &f.tokenToPiece},
		{l.llama, "llama_vocab_is_eog", &f.vocabIsEOG},
		{l.llama, "llama_vocab_n_tokens", &f.vocabNTokens},
		{l.llama, "llama_vocab_type", &f.vocabType},
		{l.llama, "llama_chat_apply_template", &f.chatApplyTemplate},
		{l.llama, "llama_sampler_chain_init", &f.samplerChainInit},
		{l.llama, "llama_sampler_chain_add", &f.samplerChainAdd},
		{l.llama, "llama_sampler_init_greedy", &f.samplerInitGreedy},
		{l.llama, "llama_sampler_init_dist", &f.samplerInitDist},
		{l.llama, "llama_sampler_init_top_k", &f.samplerInitTopK},
		{l.llama, "llama_sampler_init_top_p", &f.samplerInitTopP},
		{l.llama, "llama_sampler_init_min_p", &f.samplerInitMinP},
		{l.llama, "llama_sampler_init_temp", &f.samplerInitTemp},
		{l.llama, "llama_sampler_sample", &f.samplerSample},
		{l.llama, "llama_sampler_free", &f.samplerFree},
		{l.llama, "llama_max_parallel_sequences", &f.maxParallelSeqs},
	}
	for _, e := range table {
		sym, err := purego.Dlsym(e.h, e.name)
		if err != nil || sym == 0 {
			return fmt.Errorf("%w: symbol %s missing in %s", ErrABIMismatch, e.name, l.dir)
		}
		purego.RegisterFunc(e.fptr, sym)
	}
	// libllama-common records the commit; it is optional.
	if p := findFile(l.dir, []string{"libllama-common.so"}); p != "" {
		if h, err := purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL); err == nil {
			if sym, err := purego.Dlsym(h, "_Z12llama_commitv"); err == nil && sym != 0 {
				purego.RegisterFunc(&f.llamaCommonCommit, sym)
				f.hasLlamaCommonFunc = true
			}
		}
	}
	return nil
}

// sretCanary fills the buffers that measure struct returns.
const sretCanary = 0xA5

// sretSize calls a struct-returning function with an oversized buffer and
// returns how many bytes it wrote (rounded up to 8) and the buffer.
func sretSize(call func(out unsafe.Pointer) unsafe.Pointer) (int, []byte) {
	buf := make([]byte, 1024)
	for i := range buf {
		buf[i] = sretCanary
	}
	call(unsafe.Pointer(&buf[0]))
	last := -1
	for i := len(buf) - 1; i >= 0; i-- {
		if buf[i] != sretCanary {
			last = i
			break
		}
	}
	return (last + 1 + 7) &^ 7, buf
}

// verify checks the version, the commit and the struct layouts of the
// loaded build against the pinned one.
func (l *Library) verify() error {
	if errs := layoutErrors(); len(errs) > 0 {
		return fmt.Errorf("%w: Go mirrors: %v", ErrABIMismatch, errs)
	}
	l.version = l.fn.llamaVersion()
	if l.version != PinnedVersion {
		return fmt.Errorf("%w: llama_version() = %q in %s, want %q (%s; run `make native`)",
			ErrABIMismatch, l.version, l.dir, PinnedVersion, PinnedPackage)
	}
	if l.fn.hasLlamaCommonFunc {
		l.commit = l.fn.llamaCommonCommit()
		if l.commit != PinnedCommit {
			return fmt.Errorf("%w: llama.cpp commit %q in %s, want %q (%s; run `make native`)",
				ErrABIMismatch, l.commit, l.dir, PinnedCommit, PinnedPackage)
		}
	}
	n, buf := sretSize(l.fn.modelDefaultParams)
	if err := checkModelDefaults(n, buf); err != nil {
		return fmt.Errorf("%w (libraries in %s)", err, l.dir)
	}
	n, buf = sretSize(l.fn.contextDefaultParams)
	if err := checkContextDefaults(n, buf); err != nil {
		return fmt.Errorf("%w (libraries in %s)", err, l.dir)
	}
	var b batch
	n, raw := sretSize(func(out unsafe.Pointer) unsafe.Pointer {
		return l.fn.batchInit((*batch)(out), 1, 0, 1)
	})
	if n != int(unsafe.Sizeof(b)) {
		return fmt.Errorf("%w: llama_batch is %d bytes, want %d", ErrABIMismatch, n, unsafe.Sizeof(b))
	}
	b = *(*batch)(unsafe.Pointer(&raw[0]))
	l.fn.batchFree(b)
	return nil
}

// checkModelDefaults compares llama_model_default_params() (n bytes
// written into buf) with the pinned defaults.
func checkModelDefaults(n int, buf []byte) error {
	var want modelParams
	if n != int(unsafe.Sizeof(want)) {
		return fmt.Errorf("%w: llama_model_params is %d bytes, want %d", ErrABIMismatch, n, unsafe.Sizeof(want))
	}
	p := *(*modelParams)(unsafe.Pointer(&buf[0]))
	want = defaultModelParams()
	// Blank (padding) fields take no part in ==.
	if p != want {
		return fmt.Errorf("%w: llama_model_default_params() = %+v, want %+v", ErrABIMismatch, p, want)
	}
	return nil
}

// checkContextDefaults compares llama_context_default_params() (n bytes
// written into buf) with the pinned defaults.
func checkContextDefaults(n int, buf []byte) error {
	var want contextParams
	if n != int(unsafe.Sizeof(want)) {
		return fmt.Errorf("%w: llama_context_params is %d bytes, want %d", ErrABIMismatch, n, unsafe.Sizeof(want))
	}
	p := *(*contextParams)(unsafe.Pointer(&buf[0]))
	want = defaultContextParams()
	if p != want {
		return fmt.Errorf("%w: llama_context_default_params() = %+v, want %+v", ErrABIMismatch, p, want)
	}
	return nil
}

// defaultContextParams returns llama_context_default_params() of the
// pinned build; the bindings start from it rather than from the C call.
func defaultContextParams() contextParams {
	return contextParams{
		NCtx: 512, NBatch: 2048, NUbatch: 512, NSeqMax: 1, NOutputsMaxPerSeq: 1,
		NThreads: 4, NThreadsBatch: 4,
		RopeScalingType: -1, PoolingType: -1, AttentionType: -1, FlashAttnType: -1,
		YarnExtFactor: -1, YarnAttnFactor: -1, YarnBetaFast: -1, YarnBetaSlow: -1, DefragThold: -1,
		TypeK: ggmlTypeF16, TypeV: ggmlTypeF16,
		OffloadKQV: true, NoPerf: true, OpOffload: true, SwaFull: true,
	}
}

// defaultModelParams returns llama_model_default_params() of the pinned build.
func defaultModelParams() modelParams {
	return modelParams{NGPULayers: -1, SplitMode: 1, LoadMode: -1, LazyMode: 1, UseExtraBufts: true}
}
