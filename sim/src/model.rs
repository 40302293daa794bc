//! Model specifications (decoder-only transformers, dense or MoE) and the built-in presets.

use serde::{Deserialize, Serialize};

/// The shape of the policy model, enough to size weights, KV cache and FLOPs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Display name (the preset's name or "custom").
    pub name: String,
    /// Total parameters, in billions.
    pub params_b: f64,
    /// Parameters active per token, in billions (equal to `params_b` for dense models).
    pub active_params_b: f64,
    pub layers: u32,
    pub hidden: u32,
    /// Attention (query) heads.
    pub heads: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    pub head_dim: u32,
    pub vocab: u32,
    /// Routed experts per MoE layer (0 for dense models).
    #[serde(default)]
    pub experts: u32,
    /// Experts each token is routed to (0 for dense models).
    #[serde(default)]
    pub experts_per_token: u32,
    /// The LM head shares the input embedding's matrix (`tie_word_embeddings`); false: the input embedding is a
    /// table of its own, counted in the parameters but only looked up (no FLOPs, one row read per token).
    #[serde(default)]
    pub tied_embeddings: bool,
    /// Multi-head latent attention (DeepSeek-V2/V3, Kimi K2; 0: standard attention): the width of the compressed
    /// key/value latent every head shares. The KV cache then holds this latent and the decoupled rotary key
    /// (`qk_rope_head_dim`) per token and layer, one copy for all heads, and decode attends over it with the
    /// up-projections absorbed into the query and output.
    #[serde(default)]
    pub kv_lora_rank: u32,
    /// MLA's query latent width (queries are projected down to it and up again; 0: projected directly).
    #[serde(default)]
    pub q_lora_rank: u32,
    /// MLA's decoupled rotary key width per head (its queries and keys are `head_dim` + this wide, its values
    /// `head_dim`: the configs' `qk_nope_head_dim` = `v_head_dim` = `head_dim`); 0 without MLA.
    #[serde(default)]
    pub qk_rope_head_dim: u32,
}

impl ModelSpec {
    /// Bytes of the weights in bf16.
    pub fn weight_bytes(&self) -> f64 {
        self.params_b * 1e9 * 2.0
    }

    /// Multi-head latent attention (`kv_lora_rank` > 0).
    pub fn is_mla(&self) -> bool {
        self.kv_lora_rank > 0
    }

    /// Bytes of KV cache per token of context, bf16, summed over all layers: K and V of every KV head, or under MLA
    /// the latent and the rotary key (DeepSeek-V3: 61 · (512 + 64) · 2 = 70,272 bytes, against 4 MB for its 128 heads
    /// as plain attention).
    pub fn kv_bytes_per_token(&self) -> f64 {
        if self.is_mla() {
            self.layers as f64 * (self.kv_lora_rank + self.qk_rope_head_dim) as f64 * 2.0
        } else {
            2.0 * self.layers as f64 * self.kv_heads as f64 * self.head_dim as f64 * 2.0
        }
    }

    /// GPUs of a `tp`-way engine the KV cache is split over: its KV heads spread over the GPUs (a head is not
    /// split), so min(tp, kv_heads); under MLA one latent serves every head, so each GPU holds all of it (vLLM's
    /// MLA backends keep the whole latent cache on every tensor-parallel rank).
    pub fn kv_shards(&self, tp: u32) -> u32 {
        if self.is_mla() {
            1
        } else {
            tp.min(self.kv_heads).max(1)
        }
    }

    /// Parameters of an untied input embedding (vocab × hidden), in billions: counted in `params_b` but only looked
    /// up, so they cost no FLOPs and a decode iteration reads one row per token of them, not the table. 0 when the
    /// embedding is tied to the LM head (the head's matmul uses the whole matrix).
    pub fn lookup_params_b(&self) -> f64 {
        if self.tied_embeddings {
            0.0
        } else {
            self.vocab as f64 * self.hidden as f64 / 1e9
        }
    }

    /// Forward FLOPs per token from the parameter matmuls: 2 · active parameters, the input embedding's lookup
    /// excluded (7 % of Qwen2.5-7B's parameters).
    pub fn forward_flops_per_token(&self) -> f64 {
        2.0 * (self.active_params_b - self.lookup_params_b()) * 1e9
    }

    /// Bytes of bf16 weights a decode iteration reads besides the routed experts' (every weight but the rows of an
    /// untied input embedding it does not look up).
    pub fn decode_weight_bytes(&self) -> f64 {
        (self.params_b - self.lookup_params_b()) * 1e9 * 2.0
    }

    /// HBM bytes one token's forward pass moves outside the matmuls in training, where a micro-batch's
    /// activations (thousands of tokens × the width) do not fit in cache, so every op between the matmuls streams
    /// them. Per layer, in bf16 elements: the two norms (read, write: 2·2·h), the rotary embedding of q and k
    /// (2·(q + kv)), attention's inputs and output (2·q + 2·kv, the scores staying on chip), the two residual adds
    /// (2·3·h) and the gated activation (read gate and up, write: 3·f); so 10·h + 4·q + 4·kv + 3·f elements with q
    /// and kv the query and key (or value) widths (`attention_widths`: heads·head_dim and kv_heads·head_dim, MLA's
    /// rope-wider queries and keys) and f the FFN width the token passes through (its experts' for an MoE model),
    /// taken from the parameters less the attention's (`attention_params_per_layer`; a gated FFN holds 3·h·f). Besides the layers, the LM head's
    /// logits: written and read in bf16 and their log-softmax written in fp32 (8·vocab bytes). A backward pass moves
    /// about twice a forward's bytes (gradients in, saved inputs, gradients out), like its FLOPs.
    pub fn activation_bytes_per_token(&self) -> f64 {
        let (h, layers) = (self.hidden as f64, self.layers.max(1) as f64);
        let (q, kv) = self.attention_widths();
        let attention_params = self.attention_params_per_layer();
        let head_params = self.vocab as f64 * h;
        let layer_params = ((self.active_params_b - self.lookup_params_b()) * 1e9 - head_params) / layers;
        let ffn = ((layer_params - attention_params) / (3.0 * h)).max(0.0);
        2.0 * layers * (10.0 * h + 4.0 * q + 4.0 * kv + 3.0 * ffn) + 8.0 * self.vocab as f64
    }

    /// A training token's query width and its key (or value) width, in elements: heads · head_dim and kv_heads ·
    /// head_dim; under MLA the queries and keys are `head_dim` + rope wide per head and the values `head_dim`, so
    /// the key/value width is their mean, heads · (head_dim + rope / 2).
    pub fn attention_widths(&self) -> (f64, f64) {
        let (heads, d) = (self.heads as f64, self.head_dim as f64);
        if self.is_mla() {
            let rope = self.qk_rope_head_dim as f64;
            (heads * (d + rope), heads * (d + rope / 2.0))
        } else {
            (heads * d, self.kv_heads as f64 * d)
        }
    }

    /// Attention parameters of one layer: the q, k, v and output projections (h · (2q + 2kv)); under MLA the query's
    /// down- and up-projections (or its direct projection), the key/value down-projection to the latent and the
    /// rotary key, their up-projection to every head's key and value, the output projection and the two latent norms.
    pub fn attention_params_per_layer(&self) -> f64 {
        let (h, heads, d) = (self.hidden as f64, self.heads as f64, self.head_dim as f64);
        if self.is_mla() {
            let (r, rope, ql) = (self.kv_lora_rank as f64, self.qk_rope_head_dim as f64, self.q_lora_rank as f64);
            let q = if ql > 0.0 { h * ql + ql + ql * heads * (d + rope) } else { h * heads * (d + rope) };
            q + h * (r + rope) + r + r * heads * 2.0 * d + heads * d * h
        } else {
            let (q, kv) = self.attention_widths();
            h * (2.0 * q + 2.0 * kv)
        }
    }

    /// Attention FLOPs a new token spends per token of context it attends to in decode: 2 (QKᵀ) + 2 (AV) per head
    /// dimension; under MLA (up-projections absorbed, as vLLM decodes it) each head's scores run over the latent and
    /// the rotary key (2·(r + rope)) and its output over the latent (2·r).
    pub fn attention_flops_per_context_token(&self) -> f64 {
        let per_head = if self.is_mla() {
            2.0 * (2 * self.kv_lora_rank + self.qk_rope_head_dim) as f64
        } else {
            4.0 * self.head_dim as f64
        };
        self.layers as f64 * self.heads as f64 * per_head
    }

    /// Forward attention FLOPs per token² of a causal training sequence: half of L² scores of `head_dim` + rope
    /// wide queries and keys (2 FLOPs each) and as many weighted sums of `head_dim` wide values, per head and layer:
    /// layers · heads · (2·head_dim + rope) (2·layers·heads·head_dim without MLA). Training materialises MLA's keys
    /// and values (no absorption).
    pub fn attention_flops_per_token_sq(&self) -> f64 {
        self.layers as f64 * self.heads as f64 * (2 * self.head_dim + self.qk_rope_head_dim) as f64
    }

    /// Weight tensors in the model's checkpoint layout (Hugging Face's): per layer the four attention projections,
    /// the two norms and the FFN's three projections, or for an MoE layer its router and three per routed expert;
    /// besides the layers the input embedding, the final norm and an untied LM head. Biases and per-head norms are
    /// not counted (Qwen2's q/k/v biases add 3 a layer, Qwen3's q/k norms 2): within 1 % for the Qwen3 MoE models,
    /// a quarter low for Qwen2.5-7B (255 against 339). MLA layers hold seven attention tensors (five without the
    /// query latent); shared experts and dense first layers are counted as routed layers, so DeepSeek-V3 counts
    /// 47,461 against its checkpoint's 45,395 (+4.5 %, without the MTP layer) and Kimi-K2 1.3 % more than its own.
    /// A custom MoE model that leaves `experts` out counts as dense.
    pub fn weight_tensors(&self) -> u64 {
        let ffn = if self.experts > 0 { 1 + 3 * self.experts as u64 } else { 3 };
        // MLA: q (or q_a, its norm and q_b), kv_a, its norm, kv_b and o.
        let attention = if self.is_mla() { 4 + if self.q_lora_rank > 0 { 3 } else { 1 } } else { 4 };
        self.layers as u64 * (attention + 2 + ffn) + 2 + u64::from(!self.tied_embeddings)
    }

    pub fn is_moe(&self) -> bool {
        self.active_params_b < self.params_b
    }

    /// Parameters held by routed experts, billions: the inactive ones are (E − k)/E of them, so
    /// experts = (N − N_active)·E/(E − k). Zero for dense models or when the expert counts are unknown.
    pub fn expert_params_b(&self) -> f64 {
        if !self.is_moe() || self.experts == 0 || self.experts_per_token >= self.experts {
            return 0.0;
        }
        let (e, k) = (self.experts as f64, self.experts_per_token as f64);
        ((self.params_b - self.active_params_b) * e / (e - k)).min(self.params_b)
    }
}

/// Names of the built-in model presets.
pub const MODEL_PRESETS: &[&str] = &[
    "Qwen2.5-1.5B",
    "Qwen2.5-3B",
    "Qwen2.5-7B",
    "Qwen2.5-14B",
    "Qwen2.5-32B",
    "Qwen2.5-72B",
    "DeepSeek-R1-Distill-Qwen-1.5B",
    "Llama-3.2-1B",
    "Llama-3.2-3B",
    "Llama-3-8B",
    "Llama-3-70B",
    "DeepSeek-LLM-7B",
    "Qwen3-0.6B",
    "Qwen3-1.7B",
    "Qwen3-4B",
    "Qwen3-8B",
    "Qwen3-14B",
    "Qwen3-32B",
    "Qwen3-30B-A3B",
    "Qwen3-235B-A22B",
    "DeepSeek-V3",
    "Kimi-K2",
];

/// Other published names of a preset's architecture (fine-tunes and re-releases with the same config.json shape:
/// layers, widths, heads, vocabulary, tied head), as (alias, preset). The spec keeps the name the scenario gave.
pub const MODEL_ALIASES: &[(&str, &str)] = &[
    ("Qwen2.5-Math-1.5B", "Qwen2.5-1.5B"),
    ("Qwen2.5-Math-7B", "Qwen2.5-7B"),
    ("DeepSeek-R1-Distill-Qwen-7B", "Qwen2.5-7B"),
    ("DeepSeek-R1-Distill-Qwen-14B", "Qwen2.5-14B"),
    ("DeepSeek-R1-Distill-Qwen-32B", "Qwen2.5-32B"),
    ("Llama-3.1-8B", "Llama-3-8B"),
    ("Llama-3.1-70B", "Llama-3-70B"),
    ("Llama-3.3-70B", "Llama-3-70B"),
    ("DeepSeek-LLM-7B-Base", "DeepSeek-LLM-7B"),
    ("DeepSeek-LLM-7B-Chat", "DeepSeek-LLM-7B"),
    ("DeepSeek-V3-Base", "DeepSeek-V3"),
    ("DeepSeek-V3-0324", "DeepSeek-V3"),
    ("DeepSeek-V3.1", "DeepSeek-V3"),
    ("DeepSeek-R1", "DeepSeek-V3"),
    ("DeepSeek-R1-0528", "DeepSeek-V3"),
    ("Kimi-K2-Base", "Kimi-K2"),
    ("Kimi-K2-Instruct", "Kimi-K2"),
];

/// (name, params_b, active_params_b, layers, hidden, heads, kv_heads, head_dim, vocab, experts, experts_per_token,
/// tied_embeddings, MLA's kv_lora_rank, q_lora_rank and qk_rope_head_dim).
type ModelRow = (&'static str, f64, f64, u32, u32, u32, u32, u32, u32, u32, u32, bool, u32, u32, u32);

/// A built-in model by name or alias (case-insensitive), from the models' published configs.
pub fn model_preset(name: &str) -> Option<ModelSpec> {
    // From each model's config.json (`hidden_size`, `num_hidden_layers`, `num_attention_heads`,
    // `num_key_value_heads`, `head_dim`, `vocab_size`, `tie_word_embeddings`, the MoE's `num_experts` and
    // `num_experts_per_tok`). Parameters are counted from those shapes (attention with Qwen2.5's q/k/v biases and
    // Qwen3's q/k norms, a gated FFN of `intermediate_size`, the norms, the embedding and, untied, the head) and
    // agree with each model card's total (e.g. Qwen2.5-1.5B 1.54 B, DeepSeek-R1-Distill-Qwen-1.5B 1.78 B: its head
    // is untied, Qwen3-4B 4.02 B): `presets_count_their_parameters` checks them. The small models tie their head.
    let rows: [ModelRow; 22] = [
        ("Qwen2.5-1.5B", 1.544, 1.544, 28, 1536, 12, 2, 128, 151_936, 0, 0, true, 0, 0, 0),
        ("Qwen2.5-3B", 3.086, 3.086, 36, 2048, 16, 2, 128, 151_936, 0, 0, true, 0, 0, 0),
        ("Qwen2.5-7B", 7.62, 7.62, 28, 3584, 28, 4, 128, 152_064, 0, 0, false, 0, 0, 0),
        ("Qwen2.5-14B", 14.77, 14.77, 48, 5120, 40, 8, 128, 152_064, 0, 0, false, 0, 0, 0),
        ("Qwen2.5-32B", 32.8, 32.8, 64, 5120, 40, 8, 128, 152_064, 0, 0, false, 0, 0, 0),
        ("Qwen2.5-72B", 72.71, 72.71, 80, 8192, 64, 8, 128, 152_064, 0, 0, false, 0, 0, 0),
        ("DeepSeek-R1-Distill-Qwen-1.5B", 1.777, 1.777, 28, 1536, 12, 2, 128, 151_936, 0, 0, false, 0, 0, 0),
        ("Llama-3.2-1B", 1.236, 1.236, 16, 2048, 32, 8, 64, 128_256, 0, 0, true, 0, 0, 0),
        ("Llama-3.2-3B", 3.213, 3.213, 28, 3072, 24, 8, 128, 128_256, 0, 0, true, 0, 0, 0),
        ("Llama-3-8B", 8.03, 8.03, 32, 4096, 32, 8, 128, 128_256, 0, 0, false, 0, 0, 0),
        ("Llama-3-70B", 70.6, 70.6, 80, 8192, 64, 8, 128, 128_256, 0, 0, false, 0, 0, 0),
        // deepseek-ai/deepseek-llm-7b-base and -chat: Llama's shape with full multi-head attention (32 KV heads).
        ("DeepSeek-LLM-7B", 6.911, 6.911, 30, 4096, 32, 32, 128, 102_400, 0, 0, false, 0, 0, 0),
        ("Qwen3-0.6B", 0.596, 0.596, 28, 1024, 16, 8, 128, 151_936, 0, 0, true, 0, 0, 0),
        ("Qwen3-1.7B", 1.721, 1.721, 28, 2048, 16, 8, 128, 151_936, 0, 0, true, 0, 0, 0),
        ("Qwen3-4B", 4.022, 4.022, 36, 2560, 32, 8, 128, 151_936, 0, 0, true, 0, 0, 0),
        ("Qwen3-8B", 8.19, 8.19, 36, 4096, 32, 8, 128, 151_936, 0, 0, false, 0, 0, 0),
        ("Qwen3-14B", 14.77, 14.77, 40, 5120, 40, 8, 128, 151_936, 0, 0, false, 0, 0, 0),
        ("Qwen3-32B", 32.8, 32.8, 64, 5120, 64, 8, 128, 151_936, 0, 0, false, 0, 0, 0),
        ("Qwen3-30B-A3B", 30.5, 3.3, 48, 2048, 32, 4, 128, 151_936, 128, 8, false, 0, 0, 0),
        ("Qwen3-235B-A22B", 235.1, 22.2, 94, 4096, 64, 4, 128, 151_936, 128, 8, false, 0, 0, 0),
        // Multi-head latent attention (`qk_nope_head_dim` = `v_head_dim` = 128 as `head_dim`; `num_key_value_heads`
        // = heads). Counted from the configs' shapes (`mla_presets_count_their_parameters`): the query latent
        // (`q_lora_rank` 1,536), the KV latent (512) and rotary key (64), `first_k_dense_replace` dense layers of
        // `intermediate_size` 18,432 and MoE layers of `n_routed_experts` + one shared expert of 2,048. Without the
        // multi-token-prediction layer the checkpoints carry (DeepSeek-V3's 14 B): RL frameworks train without it
        // (verl: `num_nextn_predict_layers = 0`; NeMo-RL: `mtp_num_layers: 0`).
        ("DeepSeek-V3", 671.03, 37.55, 61, 7168, 128, 128, 128, 129_280, 256, 8, false, 512, 1536, 64),
        ("Kimi-K2", 1026.41, 32.86, 61, 7168, 64, 64, 128, 163_840, 384, 8, false, 512, 1536, 64),
    ];
    let (shown, preset) = match MODEL_ALIASES.iter().find(|a| a.0.eq_ignore_ascii_case(name)) {
        Some(&(alias, preset)) => (Some(alias), preset),
        None => (None, name),
    };
    rows.iter().find(|r| r.0.eq_ignore_ascii_case(preset)).map(|r| ModelSpec {
        name: shown.unwrap_or(r.0).to_string(),
        params_b: r.1,
        active_params_b: r.2,
        layers: r.3,
        hidden: r.4,
        heads: r.5,
        kv_heads: r.6,
        head_dim: r.7,
        vocab: r.8,
        experts: r.9,
        experts_per_token: r.10,
        tied_embeddings: r.11,
        kv_lora_rank: r.12,
        q_lora_rank: r.13,
        qk_rope_head_dim: r.14,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untied_input_embedding_costs_no_flops_and_is_not_read_in_decode() {
        let m = model_preset("Qwen2.5-7B").unwrap();
        // 152,064 × 3,584 = 0.545 B looked-up parameters of 7.62 B
        assert!((m.lookup_params_b() - 0.544997376).abs() < 1e-9);
        assert!((m.forward_flops_per_token() - 2.0 * (7.62 - 0.544997376) * 1e9).abs() < 1.0);
        assert!((m.decode_weight_bytes() - 2.0 * (7.62 - 0.544997376) * 1e9).abs() < 1.0);
        let tied = ModelSpec { tied_embeddings: true, ..m };
        assert_eq!(tied.forward_flops_per_token(), 2.0 * 7.62e9);
        assert_eq!(tied.decode_weight_bytes(), tied.weight_bytes());
    }

    #[test]
    fn activation_bytes_by_hand() {
        // h 4, q 2·2 = 4, kv 1·2 = 2, vocab 10, 2 layers of 48 attention + 3·4·8 = 96 FFN parameters (f = 8),
        // untied: 2·144 + 40 (head) + 40 (lookup) = 368 parameters. Per layer 10·4 + 4·4 + 4·2 + 3·8 = 88
        // elements; 2 bytes · 2 layers · 88 + 8 · 10 (logits) = 432.
        let m = ModelSpec {
            name: "hand".into(),
            params_b: 368e-9,
            active_params_b: 368e-9,
            layers: 2,
            hidden: 4,
            heads: 2,
            kv_heads: 1,
            head_dim: 2,
            vocab: 10,
            experts: 0,
            experts_per_token: 0,
            tied_embeddings: false,
            kv_lora_rank: 0,
            q_lora_rank: 0,
            qk_rope_head_dim: 0,
        };
        assert!((m.activation_bytes_per_token() - 432.0).abs() < 1e-6);
        // The derived FFN widths match the configs: Qwen2.5-7B f = 18,944, Llama-3-8B 14,336, Qwen3-30B-A3B
        // 8 experts × 768 = 6,144 (within the norms' and router's parameters).
        for (name, f) in [("Qwen2.5-7B", 18_944.0), ("Llama-3-8B", 14_336.0), ("Qwen3-30B-A3B", 6_144.0)] {
            let m = model_preset(name).unwrap();
            let (h, q, kv) = (m.hidden as f64, (m.heads * m.head_dim) as f64, (m.kv_heads * m.head_dim) as f64);
            let known = 2.0 * m.layers as f64 * (10.0 * h + 4.0 * q + 4.0 * kv + 3.0 * f) + 8.0 * m.vocab as f64;
            let rel = m.activation_bytes_per_token() / known - 1.0;
            assert!(rel.abs() < 0.03, "{name}: {rel}");
        }
    }

    /// Total parameters from a dense preset's shapes and its config's `intermediate_size` (attention with
    /// Qwen2.5's q/k/v biases or Qwen3's q/k norms, a gated FFN, two norms per layer, the final norm, the
    /// embedding and an untied head): the preset's `params_b` is that count.
    #[test]
    fn presets_count_their_parameters() {
        // (preset, intermediate_size, q/k/v biases, q/k norms)
        let ffn = [
            ("Qwen2.5-1.5B", 8_960, true, false),
            ("Qwen2.5-3B", 11_008, true, false),
            ("Qwen2.5-7B", 18_944, true, false),
            ("Qwen2.5-14B", 13_824, true, false),
            ("Qwen2.5-32B", 27_648, true, false),
            ("Qwen2.5-72B", 29_568, true, false),
            ("DeepSeek-R1-Distill-Qwen-1.5B", 8_960, true, false),
            ("Llama-3.2-1B", 8_192, false, false),
            ("Llama-3.2-3B", 8_192, false, false),
            ("Llama-3-8B", 14_336, false, false),
            ("Llama-3-70B", 28_672, false, false),
            ("DeepSeek-LLM-7B", 11_008, false, false),
            ("Qwen3-0.6B", 3_072, false, true),
            ("Qwen3-1.7B", 6_144, false, true),
            ("Qwen3-4B", 9_728, false, true),
            ("Qwen3-8B", 12_288, false, true),
            ("Qwen3-14B", 17_408, false, true),
            ("Qwen3-32B", 25_600, false, true),
        ];
        for (name, f, bias, qk_norm) in ffn {
            let m = model_preset(name).unwrap();
            let (h, q, kv) = ((m.hidden) as f64, (m.heads * m.head_dim) as f64, (m.kv_heads * m.head_dim) as f64);
            let mut layer = 2.0 * h * q + 2.0 * h * kv + 3.0 * h * f as f64 + 2.0 * h;
            if bias {
                layer += q + 2.0 * kv;
            }
            if qk_norm {
                layer += 2.0 * m.head_dim as f64;
            }
            let heads = if m.tied_embeddings { 1.0 } else { 2.0 };
            let total = m.layers as f64 * layer + heads * m.vocab as f64 * h + h;
            let rel = m.params_b * 1e9 / total - 1.0;
            assert!(rel.abs() < 0.002, "{name}: preset {} B, shapes {} B", m.params_b, total / 1e9);
        }
        assert!(MODEL_PRESETS.iter().all(|n| ffn.iter().any(|r| r.0 == *n) || model_preset(n).unwrap().is_moe()));
    }

    /// DeepSeek-V3's and Kimi K2's totals and active parameters from their configs' shapes (the query and KV
    /// latents, the shared expert, the dense first layers, the router with its bias, an untied head), and what MLA
    /// changes: a KV cache of the latent and rotary key, one copy on every tensor-parallel GPU, and decode
    /// attention over the latent.
    #[test]
    fn mla_presets_count_their_parameters_and_cache_the_latent() {
        // (preset, routed experts, dense first layers)
        for (name, experts, dense_layers) in [("DeepSeek-V3", 256.0, 3.0), ("Kimi-K2", 384.0, 1.0)] {
            let m = model_preset(name).unwrap();
            let (h, heads, d) = (m.hidden as f64, m.heads as f64, m.head_dim as f64);
            let (ql, r, rope) = (1536.0, 512.0, 64.0);
            let attention =
                h * ql + ql + ql * heads * (d + rope) + h * (r + rope) + r + r * heads * 2.0 * d + heads * d * h;
            assert!((attention - m.attention_params_per_layer()).abs() < 1.0, "{name}: attention {attention}");
            let (expert, dense) = (3.0 * h * 2048.0, 3.0 * h * 18_432.0);
            let layers = m.layers as f64;
            let per_layer = attention + 2.0 * h;
            let moe = |active: f64| active * expert + expert + experts * h + experts;
            let outside = 2.0 * m.vocab as f64 * h + h;
            let base = layers * per_layer + dense_layers * dense + outside;
            let total = base + (layers - dense_layers) * moe(experts);
            let active = base + (layers - dense_layers) * moe(8.0);
            assert!((m.params_b * 1e9 / total - 1.0).abs() < 1e-4, "{name}: total {} B", total / 1e9);
            assert!((m.active_params_b * 1e9 / active - 1.0).abs() < 1e-3, "{name}: active {} B", active / 1e9);
            // The routed experts from the totals: (N − N_a)·E/(E − k) against their shapes.
            let routed = (layers - dense_layers) * experts * expert;
            assert!((m.expert_params_b() * 1e9 / routed - 1.0).abs() < 1e-3, "{name}: routed {}", routed / 1e9);
        }
        let m = model_preset("DeepSeek-V3").unwrap();
        assert!(m.is_mla() && !model_preset("Qwen3-235B-A22B").unwrap().is_mla());
        // 61 layers · (512 + 64) · 2 bytes, the same on every GPU of an engine.
        assert_eq!(m.kv_bytes_per_token(), 70_272.0);
        assert_eq!((m.kv_shards(8), m.kv_shards(32)), (1, 1));
        assert_eq!(model_preset("Qwen3-235B-A22B").unwrap().kv_shards(8), 4);
        // Decode: per head 2·(512 + 64) for the scores and 2·512 for the output, 128 heads, 61 layers.
        assert_eq!(m.attention_flops_per_context_token(), 61.0 * 128.0 * (2.0 * 576.0 + 2.0 * 512.0));
        // Training: 192-wide queries and keys, 128-wide values: 61 · 128 · (2·128 + 64) per token².
        assert_eq!(m.attention_flops_per_token_sq(), 61.0 * 128.0 * 320.0);
        let q = model_preset("Qwen2.5-7B").unwrap();
        assert_eq!(q.attention_flops_per_token_sq(), 2.0 * 28.0 * 28.0 * 128.0);
        assert_eq!(q.attention_flops_per_context_token(), 4.0 * 28.0 * 28.0 * 128.0);
        // 61 layers of 7 attention, 2 norm and 1 + 3·256 FFN tensors, the embedding, final norm and head.
        assert_eq!(m.weight_tensors(), 61 * (7 + 2 + 769) + 3);
    }

    #[test]
    fn aliases_resolve_to_their_architecture_under_their_own_name() {
        let m = model_preset("qwen2.5-math-7b").unwrap();
        assert_eq!(m.name, "Qwen2.5-Math-7B");
        assert_eq!(ModelSpec { name: "Qwen2.5-7B".into(), ..m }, model_preset("Qwen2.5-7B").unwrap());
        let d = model_preset("DeepSeek-R1-Distill-Qwen-1.5B").unwrap();
        assert!(!d.tied_embeddings && model_preset("Qwen2.5-Math-1.5B").unwrap().tied_embeddings);
        for (alias, preset) in MODEL_ALIASES {
            assert!(MODEL_PRESETS.contains(preset), "{alias} names a preset");
            assert!(!MODEL_PRESETS.iter().any(|p| p.eq_ignore_ascii_case(alias)), "{alias} is not a preset too");
            assert_eq!(&model_preset(alias).unwrap().name, alias);
        }
    }

    #[test]
    fn every_listed_preset_resolves() {
        for name in MODEL_PRESETS {
            let m = model_preset(name).unwrap();
            assert_eq!(&m.name, name);
            assert!(m.active_params_b <= m.params_b);
        }
        assert!(model_preset("qwen2.5-7b").is_some());
        assert!(model_preset("nope").is_none());
    }

    #[test]
    fn sizes_match_hand_computation() {
        let m = model_preset("Qwen2.5-7B").unwrap();
        assert_eq!(m.weight_bytes(), 15.24e9);
        // 2 (K,V) · 28 layers · 4 heads · 128 dims · 2 bytes
        assert_eq!(m.kv_bytes_per_token(), 57_344.0);
        assert!(model_preset("Qwen3-30B-A3B").unwrap().is_moe());
    }

    #[test]
    fn moe_expert_split() {
        let m = model_preset("Qwen3-30B-A3B").unwrap();
        // (30.5 − 3.3) · 128 / 120 = 29.01: 48 layers × 128 experts × 3 × 2048 × 768 ≈ 29.0e9 in config.json
        assert!((m.expert_params_b() - 29.013).abs() < 0.01);
        assert_eq!(model_preset("Qwen2.5-7B").unwrap().expert_params_b(), 0.0);
    }
}
