//! Bad inputs and the messages they get: one test per refused input, named after the bug it was.

use super::check::num;
use super::*;

/// quickstart.toml without its comments.
const BASE: &str = r#"name = "t"
seed = 1

[model]
preset = "Qwen2.5-7B"

[cluster]
gpu = "H100-SXM"
nodes = 1
gpus_per_node = 8

[workload]
prompts_per_step = 64
samples_per_prompt = 8
steps = 5
max_response_tokens = 8192
response_tokens = { kind = "lognormal", median = 900, sigma = 0.9 }
prompt_tokens = { kind = "constant", tokens = 256 }

[rollout]
tp = 1

[pipeline]
type = "colocated"
"#;

fn load(text: &str, sets: &[&str]) -> Result<Scenario, ScenarioError> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    Scenario::from_text(text, Path::new("t.toml"), &sets)
}

/// The error `sets` give the base scenario.
fn err(sets: &[&str]) -> String {
    err_text(BASE, sets)
}

fn err_text(text: &str, sets: &[&str]) -> String {
    match load(text, sets) {
        Ok(_) => panic!("{sets:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "expected {p:?} in: {e}");
    }
}

#[test]
fn the_base_scenario_is_valid() {
    load(BASE, &[]).unwrap();
}

#[test]
fn hbm_bandwidth_of_1e_minus_30_is_refused() {
    let e = err(&["cluster.hbm_gbytes_per_s=1e-30"]);
    assert_has(&e, &["field `cluster.hbm_gbytes_per_s`", "expected HBM GB/s in [1, 100000], got 1e-30"]);
}

#[test]
fn bf16_tflops_of_1e_minus_30_is_refused() {
    let e = err(&["cluster.bf16_tflops=1e-30"]);
    assert_has(&e, &["field `cluster.bf16_tflops`", "expected dense bf16 TFLOP/s in [0.001, 100000], got 1e-30"]);
}

/// The analytic train cost of 64 samples of 4,096 tokens on the base scenario (with `sets`) over its train workers,
/// and the scenario.
fn train_cost(sets: &[&str]) -> (crate::cost::TrainCost, Scenario) {
    let (cost, _, s) = train_cost_of(sets, &[4096; 64]);
    (cost, s)
}

/// The same for any samples, with the trainer's shape.
fn train_cost_of(
    sets: &[&str],
    sample_tokens: &[u64],
) -> (crate::cost::TrainCost, crate::costs::train::TrainShape, Scenario) {
    use crate::cost::Estimates;
    let s = load(BASE, sets).unwrap();
    let train: Vec<_> = s.cluster.with_tag("train").map(|w| w.id).collect();
    let costs = crate::costs::analytic::AnalyticCosts::new(&s);
    (costs.train(sample_tokens, &train), costs.train_shape(&train), s)
}

/// `with` costs `logprob_s` more than `without` in its log-prob pass and `update_s` more in its update (seconds,
/// to a part in a million).
fn assert_extra(without: &crate::cost::TrainCost, with: &crate::cost::TrainCost, logprob_s: f64, update_s: f64) {
    let logprob = (with.logprob_ns[0] - without.logprob_ns[0]) as f64 * 1e-9;
    let update = (with.update_ns - without.update_ns) as f64 * 1e-9;
    assert!((logprob / logprob_s - 1.0).abs() < 1e-6, "log-prob +{logprob} s, expected +{logprob_s} s");
    assert!((update / update_s - 1.0).abs() < 1e-6, "update +{update} s, expected +{update_s} s");
}

#[test]
fn a_matmul_efficiency_outside_0_01_to_1_is_refused() {
    for bad in ["0", "1.5", "-0.2"] {
        let e = err(&[&format!("cluster.matmul_efficiency={bad}")]);
        assert_has(&e, &["field `cluster.matmul_efficiency`", "expected a share of bf16_tflops in [0.01, 1]"]);
    }
}

#[test]
fn a_custom_gpu_without_its_matmul_efficiency_is_refused() {
    let custom = BASE.replace(
        "gpu = \"H100-SXM\"",
        "bf16_tflops = 500.0\nhbm_gbytes_per_s = 2000.0\nmemory_gb = 80.0\nnvlink_gbytes_per_s = 300.0\n\
         pcie_gbytes_per_s = 25.0\nnetwork_gbits_per_s = 200.0",
    );
    let e = err_text(&custom, &[]);
    assert_has(&e, &["field `cluster.matmul_efficiency`", "missing", "share of bf16_tflops"]);
    // Given, it prices compute: half the share is half the prefill rate, and the update's matmuls (most of it;
    // its all-reduces, offload copies and activation traffic do not change) take twice as long.
    use crate::cost::{CostModel, Estimates};
    let costs = |share: &str| {
        let s = load(&custom, &[&format!("cluster.matmul_efficiency={share}")]).unwrap();
        let c = crate::costs::analytic::AnalyticCosts::new(&s);
        let w = s.cluster.worker(crate::cluster::WorkerId(0)).clone();
        (c.prefill_coeffs(&w).compute_fs_per_token, c.train(&[4096; 64], &[w.id]).update_ns)
    };
    let ((prefill_full, update_full), (prefill_half, update_half)) = (costs("1"), costs("0.5"));
    assert!((prefill_half as f64 / prefill_full as f64 - 2.0).abs() < 1e-6, "{prefill_half} vs {prefill_full}");
    assert!(update_half > update_full * 3 / 2 && update_half < update_full * 2, "{update_half} vs {update_full}");
}

#[test]
fn a_tensor_parallel_size_that_does_not_divide_the_model_parallel_group_is_refused() {
    let e = err(&["training.model_parallel_gpus=4", "training.tensor_parallel=3"]);
    assert_has(&e, &["field `training.tensor_parallel`", "3 tensor-parallel GPUs must divide", "= 4"]);
}

/// Tensor parallelism all-reduces each layer's activations twice per forward and twice per backward: worked by hand
/// for Qwen2.5-7B (28 layers, hidden 3,584) on one 8-GPU rank over H100 NVLink (450 GB/s).
#[test]
fn tensor_parallel_all_reduces_cost_what_the_ring_sends() {
    let costs = |tp: &str| train_cost(&["training.model_parallel_gpus=8", &format!("training.tensor_parallel={tp}")]);
    let ((one, s), (eight, _)) = (costs("1"), costs("8"));
    let bytes = s.model.weight_bytes();
    // Per token of a forward, the rank's time: 28 layers × 2 all-reduces × 2·(8 − 1)/8 × 2·3,584 bytes / 450 GB/s.
    let forward_s_per_token = 28.0 * 2.0 * 2.0 * 7.0 / 8.0 * 2.0 * 3584.0 / 450e9;
    let forward_s = 64.0 * 4096.0 * forward_s_per_token;
    // The update: its forward, the recomputed forward and the backward; and its gradient all-reduce is gone (each
    // GPU holds an eighth of the parameters, with no other copy), where the Ulysses-style group of one reduced all
    // 2N bytes among the 8 GPUs: 2·7/8 · 2N / 450 GB/s.
    assert_extra(&one, &eight, forward_s, 3.0 * forward_s - 2.0 * 7.0 / 8.0 * bytes / 450e9);
}

#[test]
fn expert_parallelism_without_an_moe_model_or_dividing_its_experts_is_refused() {
    let e = err(&["training.expert_parallel=8"]);
    assert_has(&e, &["field `training.expert_parallel`", "the model is dense"]);
    let e = err(&["model.preset=\"Qwen3-30B-A3B\"", "training.expert_parallel=3"]);
    assert_has(&e, &["field `training.expert_parallel`", "3 GPUs must divide the model's 128 experts"]);
    let e = err(&["model.preset=\"Qwen3-30B-A3B\"", "training.expert_parallel=16"]);
    assert_has(&e, &["field `training.expert_parallel`", "16 GPUs must divide the 8 train GPUs"]);
}

/// Expert parallelism sends each token's hidden state to its k experts' GPUs and back, once per forward and once
/// per backward: worked by hand for Qwen3-30B-A3B (48 layers, hidden 2,048, 8 experts per token) over 8 H100s.
#[test]
fn expert_parallel_all_to_alls_cost_the_routed_copies() {
    let costs = |ep: &str| train_cost(&["model.preset=\"Qwen3-30B-A3B\"", &format!("training.expert_parallel={ep}")]);
    let ((one, s), (eight, _)) = (costs("1"), costs("8"));
    let expert_bytes = s.model.expert_params_b() * 1e9 * 2.0;
    // Per token of a forward, on its GPU: 48 layers × (there and back) × 8 copies × 2·2,048 bytes × 7/8 / 450 GB/s;
    // the 8 data-parallel GPUs hold an eighth of the tokens each.
    let forward_s_per_token = 48.0 * 2.0 * 8.0 * 2.0 * 2048.0 * 7.0 / 8.0 / 450e9;
    let forward_s = 64.0 * 4096.0 / 8.0 * forward_s_per_token;
    // The update's three rounds, and the experts' gradients no longer all-reduced: each GPU holds its eighth of
    // the experts alone (they were 2·7/8 · 2·expert parameters / 450 GB/s among the 8 GPUs).
    assert_extra(&one, &eight, forward_s, 3.0 * forward_s - 2.0 * 7.0 / 8.0 * expert_bytes / 450e9);
}

/// The gradient all-reduce moves a GPU's shard of the gradients among the GPUs that hold the same shard: worked by
/// hand for 8 H100s in one node (NVLink, 450 GB/s) at tensor parallel 2, with and without 2 pipeline stages.
#[test]
fn the_gradient_all_reduce_moves_a_shard_among_its_copies() {
    let update = |pp: &str| {
        let pp = format!("training.pipeline_parallel={pp}");
        let (cost, s) = train_cost(&["training.model_parallel_gpus=4", "training.tensor_parallel=2", &pp]);
        // The stages' fill and drain, priced apart (`TrainShape::pipeline_factor`): the same passes without them.
        let train: Vec<_> = s.cluster.with_tag("train").map(|w| w.id).collect();
        let mut shape = crate::costs::analytic::AnalyticCosts::new(&s).train_shape(&train);
        let with = shape.passes(&[4096; 64]).update_s;
        shape.pipeline_stages = 1;
        let flat = shape.passes(&[4096; 64]).update_s;
        (cost.update_ns as f64 * 1e-9 - (with - flat), s.model.weight_bytes(), with / flat)
    };
    let ((one_stage, bytes, no_bubble), (two_stages, _, bubble)) = (update("1"), update("2"));
    // Each rank's 32 samples of 4,096 tokens in micro-batches of 16,384 tokens per GPU × 4 GPUs: m = 2, so two
    // stages take (2 + 1)/2 of the busy time.
    assert_eq!((no_bubble, bubble), (1.0, 1.5));
    // One optimizer step: 2·(n − 1)/n · 2N/s / link, s = 2 (n = 4 copies) against s = 4 (n = 2 copies).
    let ring = |s: f64, n: f64| 2.0 * (n - 1.0) / n * bytes / s / 450e9;
    let saved_s = one_stage - two_stages;
    assert!((saved_s / (ring(2.0, 4.0) - ring(4.0, 2.0)) - 1.0).abs() < 1e-6, "{saved_s}");
    // Stages that do not divide the group are refused.
    let e = err(&["training.model_parallel_gpus=4", "training.tensor_parallel=2", "training.pipeline_parallel=3"]);
    assert_has(&e, &["field `training.pipeline_parallel`", "3 pipeline stages × 2 tensor-parallel GPUs must divide"]);
}

/// Hybrid sharding (`training.fsdp_size`): an offloading colocated trainer moves 1/fsdp_size of the state per GPU,
/// not 1/G. On 8 GPUs at fsdp_size 2 each pass's copies grow by (1/2 − 1/8) of the model: the log-prob pass loads and
/// puts back 4 bytes per parameter, the update 12 (AdamW's state with the fp32 master copy).
#[test]
fn hybrid_sharding_offloads_its_larger_shard() {
    let train = |sets: &[&str]| {
        let (cost, _, s) = train_cost_of(sets, &[1000; 64]);
        assert!(s.framework.offload);
        (cost, s.model.params_b * 1e9, s.framework.offload_gbytes_per_s * 1e9)
    };
    let (full, n, bw) = train(&[]);
    let (hybrid, _, _) = train(&["training.fsdp_size=2"]);
    let more_s = |bytes_per_param: f64| 2.0 * bytes_per_param * n * (0.5 - 0.125) / bw;
    assert_extra(&full, &hybrid, more_s(4.0), more_s(12.0));
    // Not a divisor of the train GPUs: refused by field.
    let e = err(&["training.fsdp_size=3"]);
    assert_has(&e, &["field `training.fsdp_size`", "3 GPUs per copy of the sharded training state must divide the 8"]);
    // A copy on one GPU: 16 bytes per parameter of a 7.6B model overflow an 80 GB H100, and more GPUs would not help.
    let e = err(&["training.fsdp_size=1"]);
    assert_has(
        &e,
        &["field `training.fsdp_size`", "(sharded over 1)", "raise training.fsdp_size (a divisor of the 8 train GPUs)"],
    );
    // Megatron parallelism already splits the state: hybrid FSDP sharding is refused with it.
    let e = err(&["training.fsdp_size=2", "training.model_parallel_gpus=2", "training.tensor_parallel=2"]);
    assert_has(&e, &["field `training.fsdp_size`", "hybrid FSDP sharding is for data-parallel (FSDP) trainers"]);
}

/// `framework.attention_efficiency` prices a training pass's attention FLOPs (2·layers·heads·head_dim·L² per
/// sample forward) at that share of the matmuls' rate: at one half the passes grow by exactly their attention time.
#[test]
fn attention_at_half_the_matmul_rate_adds_its_own_time_again() {
    let (full, shape, s) = train_cost_of(&[], &[4096; 64]);
    assert_eq!(s.framework.attention_efficiency, 1.0, "the presets price attention at the matmul rate");
    let (half, _) = train_cost(&["framework.attention_efficiency=0.5"]);
    let m = &s.model;
    // The rank with the most samples computes 64 / ranks of them (equal lengths: balanced exactly).
    let per_rank = 64 / shape.ranks as u64;
    let attention_flops = per_rank as f64 * 2.0 * (m.layers * m.heads * m.head_dim) as f64 * 4096.0 * 4096.0;
    let attention_s = attention_flops / shape.rank_flops;
    let passes = crate::costs::train::TrainShape::update_passes(s.training.gradient_checkpointing);
    assert_extra(&full, &half, attention_s, passes * attention_s);
}

/// A weight sync: the trainer gathers the full tensors from its shards, then each rollout GPU receives all of them.
/// Worked by hand for Qwen2.5-7B on one H100 node (NVLink 450 GB/s), 4 train and 4 rollout GPUs, verl's 1 s fixed.
#[test]
fn a_weight_sync_gathers_the_shards_then_copies_the_full_weights() {
    use crate::cost::Estimates;
    let sync_s = |sets: &[&str]| {
        let mut all = vec![
            "pipeline.type=disaggregated",
            "pipeline.disaggregated.rollout_gpus=4",
            "pipeline.weight_sync_per_tensor=false",
        ];
        all.extend_from_slice(sets);
        let s = load(BASE, &all).unwrap();
        let ids = |tag| s.cluster.with_tag(tag).map(|w| w.id).collect::<Vec<_>>();
        let ns = crate::costs::analytic::AnalyticCosts::new(&s).sync_ns(&ids("train"), &ids("rollout"));
        (ns as f64 * 1e-9, s.model.weight_bytes())
    };
    // FSDP: sharded over the 4 train GPUs, 2N · 3/4 gathered; then 2N into each rollout GPU, even at tp 2.
    let (fsdp, bytes) = sync_s(&[]);
    let copy = bytes / 450e9;
    assert!((fsdp / (0.75 * copy + copy + 1.0) - 1.0).abs() < 1e-6, "{fsdp}");
    let (tp2, _) = sync_s(&["rollout.tp=2"]);
    assert!((tp2 / fsdp - 1.0).abs() < 1e-6, "{tp2} vs {fsdp}");
    // Megatron TP 2: each replica holds the whole model, gathered inside its pairs: 2N · 1/2.
    let (megatron, _) = sync_s(&["training.model_parallel_gpus=2", "training.tensor_parallel=2"]);
    assert!((megatron / (0.5 * copy + copy + 1.0) - 1.0).abs() < 1e-6, "{megatron}");
    // Tensor by tensor (verl's presets): each of the 28 · (4 + 2 + 3) + 3 = 255 tensors also pays one ring
    // all-gather's latency over the 4 train GPUs of one node, NCCL's 8.4 µs + 3 NVLink hops × 3.4 µs = 18.6 µs.
    let (per_tensor, _) = sync_s(&["pipeline.weight_sync_per_tensor=true"]);
    assert!(((per_tensor - fsdp) / (255.0 * 18.6e-6) - 1.0).abs() < 1e-6, "{per_tensor} vs {fsdp}");
}

/// The per-tensor latency across nodes: 16 train GPUs on two nodes of 8 take 14 NVLink hops and one network hop
/// per all-gather (8.4 + 14 · 3.4 + 9.6 = 65.6 µs), over Qwen3-30B-A3B's 48 · (4 + 2 + 1 + 3 · 128) + 3 = 18,771
/// tensors: 1.231 s more per sync.
#[test]
fn a_per_tensor_sync_pays_one_ring_latency_per_tensor_over_the_trainers_nodes() {
    use crate::cost::Estimates;
    let sync_s = |per_tensor: &str| {
        let sets = [
            "model.preset=Qwen3-30B-A3B",
            "cluster.nodes=4",
            "pipeline.type=disaggregated",
            "pipeline.disaggregated.rollout_gpus=16",
            "rollout.tp=4",
            per_tensor,
        ];
        let s = load(BASE, &sets).unwrap();
        assert_eq!(s.model.weight_tensors(), 18_771);
        let ids = |tag| s.cluster.with_tag(tag).map(|w| w.id).collect::<Vec<_>>();
        crate::costs::analytic::AnalyticCosts::new(&s).sync_ns(&ids("train"), &ids("rollout")) as f64 * 1e-9
    };
    let extra = sync_s("pipeline.weight_sync_per_tensor=true") - sync_s("pipeline.weight_sync_per_tensor=false");
    assert!((extra / (18_771.0 * 65.6e-6) - 1.0).abs() < 1e-6, "{extra}");
}

/// NeMo-RL streams its refit from v0.4 on, so `nemo-rl` pays no per-tensor latency; `nemo-rl-v0.3` (a refit through
/// the controller, group by group) pays the same whole-trainer latency as verl's presets, and differs in nothing else.
#[test]
fn nemo_rl_streams_its_refit_and_its_v0_3_preset_syncs_tensor_by_tensor() {
    use crate::cost::Estimates;
    let sync_s = |preset: &str| {
        let sets = [
            preset,
            "model.preset=Qwen3-30B-A3B",
            "cluster.nodes=4",
            "pipeline.type=disaggregated",
            "pipeline.disaggregated.rollout_gpus=16",
            "rollout.tp=4",
        ];
        let s = load(BASE, &sets).unwrap();
        let ids = |tag| s.cluster.with_tag(tag).map(|w| w.id).collect::<Vec<_>>();
        crate::costs::analytic::AnalyticCosts::new(&s).sync_ns(&ids("train"), &ids("rollout")) as f64 * 1e-9
    };
    let (streamed_s, v03_s) = (sync_s("framework.preset=nemo-rl"), sync_s("framework.preset=nemo-rl-v0.3"));
    // The 16 train GPUs on two nodes: 65.6 µs per ring all-gather, 18,771 tensors (the test above).
    assert!(((v03_s - streamed_s) / (18_771.0 * 65.6e-6) - 1.0).abs() < 1e-6, "{v03_s} vs {streamed_s}");
    assert!((v03_s / sync_s("framework.preset=verl-megatron") - 1.0).abs() < 1e-12);
    use crate::framework::{framework_preset, FrameworkSpec};
    let (streamed, v03) = (framework_preset("nemo-rl").unwrap(), framework_preset("nemo-rl-v0.3").unwrap());
    assert!(!streamed.weight_sync_per_tensor);
    assert_eq!(v03, FrameworkSpec { name: "nemo-rl-v0.3".into(), weight_sync_per_tensor: true, ..streamed });
}

#[test]
fn switch_fixed_s_of_1e300_is_refused() {
    let e = err(&["pipeline.colocated.switch_fixed_s=1e300"]);
    assert_has(&e, &["field `pipeline.colocated.switch_fixed_s`", "expected seconds in [0, 1000000], got 1e300"]);
}

#[test]
fn lognormal_sigma_of_50_is_refused() {
    let e = err(&["workload.response_tokens={ kind = \"lognormal\", median = 900, sigma = 50 }"]);
    assert_has(&e, &["field `workload.response_tokens.sigma`", "in (0, 5], got 50"]);
    let e = err(&["workload.reward_s={ kind = \"lognormal\", median = 1, sigma = 50 }"]);
    assert_has(&e, &["field `workload.reward_s.sigma`", "in (0, 5], got 50"]);
}

#[test]
fn price_of_1e308_per_gpu_hour_is_refused() {
    let e = err(&["cluster.price_per_gpu_hour=1e308"]);
    assert_has(
        &e,
        &["field `cluster.price_per_gpu_hour`", "expected US dollars per GPU-hour in [0, 10000], got 1e308"],
    );
}

/// Every rate, time, price and size field refuses an absurd value, naming the field.
#[test]
fn absurd_values_of_every_bounded_field_are_refused() {
    let cases: &[(&str, &str)] = &[
        ("model.params_b=1e9", "expected billions of parameters in (0, 100000], got 1e9"),
        ("model.active_params_b=1e9", "in (0, 100000], got 1e9"),
        ("model.layers=100000", "must be at most 10000 (transformer layers), got 100000"),
        ("model.hidden=4000000000", "must be at most 1048576 (hidden size)"),
        ("model.heads=4000000000", "must be at most 65536 (attention heads)"),
        ("model.head_dim=4000000000", "must be at most 65536 (dimension per head)"),
        ("model.vocab=4000000000", "must be at most 100000000 (vocabulary size)"),
        ("model.experts=4000000000", "must be at most 100000 (routed experts per MoE layer)"),
        ("cluster.memory_gb=1e300", "expected GB of memory in (0, 100000], got 1e300"),
        ("cluster.memory_gb=0", "expected a positive number (GB of memory), got 0"),
        ("cluster.nvlink_gbytes_per_s=1e300", "expected NVLink GB/s in [0.1, 100000], got 1e300"),
        ("cluster.pcie_gbytes_per_s=0.001", "expected PCIe GB/s in [0.1, 100000], got 0.001"),
        ("cluster.network_gbits_per_s=1e-30", "expected network Gbit/s in [0.1, 100000], got 1e-30"),
        ("cluster.nodes=4294967295", "must be at most 1048576 (number of nodes)"),
        ("cluster.gpus_per_node=100000", "must be at most 1024 (GPUs per node)"),
        ("cluster.nodes=1048576", "1048576 nodes × 8 GPUs is 8388608 GPUs; at most 1048576 are simulated"),
        ("framework.step_overhead_s=1e300", "expected seconds per step in [0, 1000000], got 1e300"),
        ("framework.controller_ns_per_padded_token=1e300", "in [0, 1000000], got 1e300"),
        ("framework.seq_overhead_us=1e300", "expected microseconds in [0, 1000000], got 1e300"),
        ("framework.graph_layer_us=1e300", "expected microseconds in [0, 1000000], got 1e300"),
        ("framework.eager_layer_us=1e300", "expected microseconds in [0, 1000000], got 1e300"),
        ("framework.offload_gbytes_per_s=1e-30", "expected GB/s in [0.1, 100000], got 1e-30"),
        ("framework.moe_mfu_scale=2", "expected a fraction in (0, 1]"),
        ("framework.attention_efficiency=0", "expected a fraction in (0, 1]"),
        (
            "framework.stream_groups_per_engine=2000000",
            "must be at most 1048576 (prompt groups in flight per rollout engine; 0: no cap), got 2000000",
        ),
        (
            "framework.activation_traffic=-1",
            "expected a multiple of the model's activation bytes per token (1: unfused, 0: none) in [0, 4], got -1",
        ),
        ("framework.update_elementwise={ hidden_ns = 1e300 }", "expected nanoseconds in [0, 1e9], got 1e300"),
        ("framework.decode_elementwise={ sequence_head_ns = -1 }", "expected nanoseconds in [0, 1e9], got -1"),
        ("training.mfu=0", "expected a fraction in (0, 1]"),
        ("training.micro_batch_tokens=4000000000", "must be at most 100000000 (tokens per micro-batch per GPU)"),
        ("training.logprob_micro_batch_tokens=4000000000", "must be at most 100000000"),
        ("training.micro_batch_overhead_ms=1e300", "expected milliseconds in [0, 60000], got 1e300"),
        ("training.activation_reserve_gb=1e300", "expected GB in [0, 100000], got 1e300"),
        ("training.model_parallel_gpus=4000000000", "must be at most 1048576"),
        ("rollout.tp=4000000000", "must be at most 65536 (tensor-parallel degree of each rollout engine)"),
        ("rollout.max_num_seqs=4000000000", "must be at most 1048576 (most sequences decoded at once per engine)"),
        ("rollout.hbm_efficiency=1.5", "expected a fraction in (0, 1] (achieved share of HBM bandwidth), got 1.5"),
        ("cluster.hbm_efficiency_vs_h100=5", "relative to an H100's in [0.1, 2], got 5"),
        ("cluster.layer_floor_vs_h100=0", "fixed cost relative to an H100's in [0.1, 10], got 0"),
        ("cluster.train_efficiency_vs_h100=3", "achievable matmul rate relative to an H100's in [0.1, 2], got 3"),
        (
            "cluster.hbm_efficiency_vs_h100=1.9",
            "1.9 × rollout.hbm_efficiency 0.885 = 1.681 of H100-SXM's HBM bandwidth",
        ),
        (
            "rollout.kv_read_efficiency=0",
            "expected a fraction in (0, 1] (achieved share of peak HBM bandwidth reading the KV cache), got 0",
        ),
        ("rollout.iteration_overhead_ms=1e300", "expected milliseconds in [0, 10000], got 1e300"),
        ("rollout.tp_allreduce_us=1e300", "expected microseconds in [0, 1000000], got 1e300"),
        ("rollout.tp_allreduce_internode_us=-1", "expected microseconds in [0, 1000000], got -1"),
        ("rollout.kv_capacity_tokens=10000000000000", "must be at most 1000000000000 tokens"),
        ("pipeline.weight_sync_fixed_s=1e300", "expected seconds in [0, 1000000], got 1e300"),
        ("pipeline.colocated.switch_to_train_s=1e300", "expected seconds in [0, 1000000], got 1e300"),
        ("pipeline.colocated.switch_to_rollout_s=1e300", "expected seconds in [0, 1000000], got 1e300"),
        ("workload.max_response_tokens=4000000000", "must be at most 10000000 (cap on response length)"),
        ("workload.max_prompt_tokens=4000000000", "must be at most 10000000 (cap on prompt length)"),
        ("workload.max_context_tokens=4000000000", "must be at most 100000000"),
        ("workload.response_tokens={ kind = \"lognormal\", median = 1e300, sigma = 1 }", "in (0, 10000000], got 1e300"),
        (
            "workload.response_tokens={ kind = \"quantiles\", points = [[0, 1], [1, 1e300]] }",
            "tokens must be at most 10000000, got 1e300",
        ),
        ("workload.reward_s={ kind = \"constant\", seconds = 1e300 }", "expected seconds in [0, 86400], got 1e300"),
        ("workload.reward_s={ kind = \"lognormal\", median = 1e300, sigma = 1 }", "in (0, 86400], got 1e300"),
        ("workload.reward_batch_s=1e300", "expected seconds per batch in [0, 86400], got 1e300"),
        ("workload.response_growth_per_step=1e300", "in [-0.99, 10], got 1e300"),
        ("failures.recovery_s=1e300", "expected seconds a failed worker is down in [0, 1000000], got 1e300"),
        ("failures.mtbf_gpu_hours=1e300", "in (0, 10000000], got 1e300"),
        ("exec.learning_rate=1e300", "expected AdamW learning rate in (0, 1], got 1e300"),
        ("exec.kl_coef=1e300", "expected KL penalty coefficient in [0, 100], got 1e300"),
        ("published.step_s=1e300", "expected published seconds in (0, 1000000], got 1e300"),
    ];
    for (set, message) in cases {
        let field = set.split('=').next().unwrap();
        let e = err(&[set]);
        assert!(e.contains(message), "{set}: expected {message:?} in: {e}");
        assert!(e.contains(&format!("field `{field}")) || e.contains("field `cluster.nodes`"), "{set}: {e}");
    }
    // The async and seamless tables' seconds, under their pipelines.
    let e = err(&["pipeline.type=seamless", "pipeline.seamless.lend_s=1e300"]);
    assert_has(&e, &["field `pipeline.seamless.lend_s`", "expected seconds in [0, 1000000], got 1e300"]);
    let e = err(&["pipeline.type=async", "pipeline.async.steps_per_sync=100000"]);
    assert_has(&e, &["field `pipeline.async.steps_per_sync`", "must be at most 10000"]);
}

#[test]
fn numbers_in_messages_are_printed_compactly() {
    assert_eq!(num(1e300), "1e300");
    assert_eq!(num(1e-30), "1e-30");
    assert_eq!(num(0.5), "0.5");
    assert_eq!(num(123456.0), "123456");
    assert_eq!(num(0.0), "0");
    assert_eq!(num(-2e12), "-2e12");
    let e = err(&["pipeline.colocated.switch_fixed_s=1e300"]);
    assert!(!e.contains("0000000000000"), "{e}");
}

#[test]
fn mtbf_of_0_01_gpu_hours_that_never_finishes_is_refused() {
    // 0.01 GPU-hours: each of the 8 one-GPU workers fails every 36 s and is down 600 s, so all 8 are up at once
    // (36/636)^8 ≈ 1e-10 of the time.
    let e = err(&["failures.mtbf_gpu_hours=0.01"]);
    assert_has(
        &e,
        &[
            "field `failures.mtbf_gpu_hours`",
            "0.01 GPU-hours over the cluster's 8 GPUs is a failure every 4.5 s somewhere in the cluster",
            "recovery_s = 600 s: all 8 workers would be up at once only 1.06e-8 % of the time",
            "the workers are all up at once at least half the time and failures are at least 1 s apart: raise it to at least 1.85",
        ],
    );
    // The least MTBF the message names is accepted.
    load(BASE, &["failures.mtbf_gpu_hours=1.85"]).unwrap();
    load(BASE, &["failures.mtbf_gpu_hours=1.8"]).unwrap_err();
}

#[test]
fn mtbf_of_1e_minus_9_with_zero_recovery_is_refused() {
    let e = err(&["failures.mtbf_gpu_hours=1e-9", "failures.recovery_s=0"]);
    assert_has(
        &e,
        &[
            "field `failures.mtbf_gpu_hours`",
            "1e-9 GPU-hours",
            "a failure every 4.51e-7 s",
            "raise it to at least 0.00223",
        ],
    );
    // A failure a second somewhere in the cluster, with instant recovery, is accepted (the simulator guards the rest).
    load(BASE, &["failures.mtbf_gpu_hours=0.00223", "failures.recovery_s=0"]).unwrap();
}

#[test]
fn steps_of_4294967295_are_refused_before_the_run() {
    let e = err(&["workload.steps=4294967295"]);
    assert_has(
        &e,
        &[
            "field `workload.steps`",
            "4294967295 steps × 512 trajectories per step = 2199023255040 trajectories, above limits.max_trajectories = 50000000",
            "--set limits.max_trajectories=N",
        ],
    );
    load(BASE, &["workload.steps=200000", "limits.max_trajectories=200000000"]).unwrap();
}

#[test]
fn ten_billion_trajectories_per_step_are_refused_before_the_run() {
    let e = err(&["workload.prompts_per_step=100000", "workload.samples_per_prompt=100000"]);
    assert_has(
        &e,
        &[
            "field `workload.prompts_per_step`",
            "100000 groups × 100000 samples_per_prompt = 10000000000 trajectories per step, above limits.max_trajectories_per_step = 1048576",
            "[limits] max_trajectories_per_step",
        ],
    );
    let e = err(&["workload.prompts_per_step=2", "workload.samples_per_prompt=4000000"]);
    assert_has(&e, &["field `workload.samples_per_prompt`"]);
    let e = err(&["limits.max_trajectories=0"]);
    assert_has(&e, &["field `limits.max_trajectories`", "must be at least 1"]);
    let s = load(BASE, &[]).unwrap();
    assert_eq!(s.resolved.limits.as_ref().and_then(|l| l.max_trajectories), Some(DEFAULT_MAX_TRAJECTORIES));
}

const WORKERS: &str = r#"
[[cluster.workers]]
name = "a"
count = 2
tags = ["rollout", "train"]

[[cluster.workers]]
name = "b"
tags = ["rollout", "train"]
"#;

#[test]
fn duplicate_worker_names_are_refused() {
    let text = format!("{BASE}{WORKERS}");
    load(&text, &[]).unwrap();
    let e = err_text(&text, &["cluster.workers[0].count=1", "cluster.workers[1].name=a"]);
    assert_has(
        &e,
        &[
            "field `cluster.workers[1].name`",
            "worker name `a` is already used by an earlier group (cluster.workers[0])",
        ],
    );
    // Group "a" of two workers makes a0 and a1; a group named a1 collides with it.
    let e = err_text(&text, &["cluster.workers[1].name=a1"]);
    assert_has(&e, &["field `cluster.workers[1].name`", "worker name `a1` is already used"]);
}

#[test]
fn names_that_leave_or_garble_the_run_folder_are_refused() {
    for name in ["..", ".", "a/b", "a\\\\b", "a\\u0000b", "a\\nb", "a\\u001bb"] {
        let e = err(&[&format!("name=\"{name}\"")]);
        assert_has(&e, &["field `name`", "without slashes, backslashes or control characters, and not `.` or `..`"]);
    }
    load(BASE, &["name=\"run.v2 (H100)\""]).unwrap();
}

#[test]
fn multi_turn_turns_of_65_are_refused_not_clamped() {
    let mt = |turns: &str| {
        format!("workload.multi_turn={{ turns = {turns}, tool_latency_s = {{ kind = \"constant\", seconds = 1 }}, tool_tokens = {{ kind = \"constant\", tokens = 10 }} }}")
    };
    let e = err(&[&mt("{ kind = \"constant\", tokens = 65 }")]);
    assert_has(&e, &["field `workload.multi_turn.turns.tokens`", "must be at most 64 (turns per trajectory), got 65"]);
    let e = err(&[&mt("{ kind = \"quantiles\", points = [[0, 1], [1, 100]] }")]);
    assert_has(
        &e,
        &["field `workload.multi_turn.turns.points[1]`", "turns per trajectory must be at most 64, got 100"],
    );
    let e = err(&[&mt("{ kind = \"lognormal\", median = 65, sigma = 0.5 }")]);
    assert_has(
        &e,
        &["field `workload.multi_turn.turns.median`", "expected median turns per trajectory in (0, 64], got 65"],
    );
    load(BASE, &[&mt("{ kind = \"constant\", tokens = 64 }")]).unwrap();
}

#[test]
fn kv_capacity_tokens_too_small_is_named_in_the_error() {
    let e = err(&["rollout.kv_capacity_tokens=1"]);
    assert_has(
        &e,
        &[
            "field `rollout.kv_capacity_tokens`",
            "one sequence can reach 12289 tokens",
            "rollout.kv_capacity_tokens gives each engine KV cache for only 1 tokens; raise kv_capacity_tokens to at least 12289",
        ],
    );
    assert!(!e.contains("rollout.tp"), "{e}");
    // Without the override, the formula's capacity is what falls short: the caps and tp are named.
    let e = err(&["workload.max_response_tokens=4000000"]);
    assert_has(&e, &["field `workload.max_response_tokens`", "raise rollout.tp or lower the caps"]);
}

#[test]
fn wrong_types_are_explained_without_internal_type_names() {
    let e = err(&["pipeline=3"]);
    assert_has(&e, &["field `pipeline`", "expected a table with `type = \"colocated\"`", "pipeline.type=colocated"]);
    for set in [
        "pipeline=3",
        "model=1",
        "workload.response_tokens=5",
        "workload.reward_s=5",
        "cluster.workers=[1]",
        "workload.multi_turn=2",
        "failures=1",
        "failures.events=[1]",
        "workload.trace=1",
        "limits=2",
        "published.phases=[1]",
        "pipeline.async=3",
        "workload.steps=-1",
    ] {
        let e = err(&[set]);
        assert!(!e.contains("Raw"), "{set}: {e}");
    }
    assert_has(&err(&["workload.response_tokens=5"]), &["expected a length distribution, an inline table"]);
}

#[test]
fn a_published_phase_may_not_count_a_switch_twice() {
    let phase = |cols: &str| format!("published.phases=[{{ name = \"refit\", seconds = 5, sim = {cols} }}]");
    let e = err(&["published.step_s=10", &phase(r#"["sync", "switch", "switch_to_rollout"]"#)]);
    assert_has(&e, &["field `published.phases[0].sim`", "`switch` already holds `switch_to_rollout`"]);
    load(BASE, &["published.step_s=10", &phase(r#"["sync", "switch_to_rollout"]"#)]).unwrap();
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rlsim-scenario-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The base scenario with lengths from a trace at `path`.
fn with_trace(path: &str) -> String {
    BASE.replace(
        "response_tokens = { kind = \"lognormal\", median = 900, sigma = 0.9 }\nprompt_tokens = { kind = \"constant\", tokens = 256 }\n",
        &format!("trace = {{ path = {path:?} }}\n"),
    )
}

#[test]
fn trace_that_is_not_a_regular_file_is_refused() {
    let e = err_text(&with_trace("/dev/zero"), &[]);
    assert_has(&e, &["field `workload.trace.path`", "/dev/zero: not a regular file"]);
    let d = tmpdir("trace-dir");
    let e = err_text(&with_trace(d.to_str().unwrap()), &[]);
    assert_has(&e, &["not a regular file"]);
}

#[test]
fn file_that_is_not_a_trace_is_echoed_at_most_80_characters() {
    let d = tmpdir("not-a-trace");
    let secret = format!("{}SECRET-TAIL", "x".repeat(100));
    let path = d.join("passwd");
    std::fs::write(&path, format!("{secret}\nsecond line\n")).unwrap();
    let e = err_text(&with_trace(path.to_str().unwrap()), &[]);
    assert_has(&e, &["field `workload.trace.path`", "unknown column", &format!("{}…", "x".repeat(80))]);
    assert!(!e.contains("SECRET") && !e.contains(&"x".repeat(81)) && !e.contains("second line"), "{e}");
}

#[test]
fn rollout_tp_summary_is_the_workers_tp_not_the_default() {
    let text = format!("{BASE}{WORKERS}");
    let s = load(&text, &["cluster.workers[0].tp=2", "cluster.workers[1].tp=2"]).unwrap();
    assert_eq!(s.rollout.tp, 1);
    assert_eq!(s.rollout_tp_summary(), "2");
    let s = load(&text, &["cluster.workers[1].tp=4"]).unwrap();
    assert_eq!(s.rollout_tp_summary(), "1–4");
    assert_eq!(load(BASE, &["rollout.tp=2"]).unwrap().rollout_tp_summary(), "2");
}

/// An untied input embedding larger than the dense parameters would leave negative matmul FLOPs; it is refused
/// naming `model.vocab`, and a tied one is accepted. For an MoE model the experts do not count as dense.
#[test]
fn an_untied_embedding_larger_than_the_dense_parameters_is_refused() {
    let e = err(&["model.vocab=10000000"]);
    assert!(e.contains("field `model.vocab`") && e.contains("tied_embeddings = true"), "{e}");
    assert!(load(BASE, &["model.vocab=10000000", "model.tied_embeddings=true"]).is_ok());
    // Qwen3-30B-A3B: 3.3 B active, of which ~1.4 B dense; a 1,000,000-token vocabulary × 2,048 is 2.05 B.
    let e = err(&["model.preset=\"Qwen3-30B-A3B\"", "model.vocab=1000000"]);
    assert!(e.contains("field `model.vocab`") && e.contains("dense"), "{e}");
    assert!(load(BASE, &["model.preset=\"Qwen3-30B-A3B\"", "model.vocab=600000"]).is_ok());
}

/// A rollout engine lives in one node or spans whole nodes; engines over whole nodes must tile the GPUs that
/// time-slice (a split layout trains on what is left).
#[test]
fn rollout_engines_fit_in_a_node_or_span_whole_nodes() {
    let model = "model.preset=\"Qwen2.5-14B\"";
    let s = load(BASE, &[model, "cluster.nodes=2", "rollout.tp=16"]).unwrap();
    assert_eq!(s.cluster.workers.len(), 1);
    assert_eq!(s.cluster.workers[0].tp, 16);
    let e = err(&[model, "cluster.nodes=2", "rollout.tp=12"]);
    assert_has(&e, &["field `rollout.tp`", "12 must divide gpus_per_node (8), or be a multiple of it"]);
    let e = err(&[model, "cluster.nodes=3", "rollout.tp=16"]);
    assert_has(&e, &["field `rollout.tp`", "engines of 16 GPUs do not tile the cluster's 24 GPUs"]);
    let split = ["pipeline.type=disaggregated", "pipeline.disaggregated.rollout_gpus=16"];
    let s = load(BASE, &[model, "cluster.nodes=3", "rollout.tp=16", split[0], split[1]]).unwrap();
    let pool = |tag| s.cluster.with_tag(tag).map(|w| w.tp).collect::<Vec<u32>>();
    assert_eq!((pool("rollout"), pool("train")), (vec![16], vec![8]));
    // Seamless cuts its lendable train pool into engines of the same size.
    let s = load(BASE, &[model, "cluster.nodes=4", "rollout.tp=16", "pipeline.type=seamless"]).unwrap();
    let starts = |role| s.cluster.workers.iter().filter(|w| w.start == role).map(|w| w.tp).collect::<Vec<u32>>();
    assert_eq!((starts(crate::cost::Role::Rollout), starts(crate::cost::Role::Train)), (vec![16], vec![16]));
    // A split layout whose one engine would take every GPU says so on the field the user set.
    let e = err(&[model, "cluster.nodes=2", "rollout.tp=16", split[0]]);
    assert_has(&e, &["field `rollout.tp`", "one engine of 16 GPUs leaves none of the cluster's 16 GPUs to train"]);
}

/// Decode pays each running sequence's share of the engine's tensor-parallel all-reduces: two per layer, 2·hidden
/// bytes each, 2·(t − 1)/t of them per GPU, over NVLink inside a node and over the NIC across nodes. Worked by hand
/// for Qwen2.5-14B (48 layers, hidden 5,120) on H100 (NVLink 450 GB/s, a 400 Gbit/s NIC).
#[test]
fn decode_all_reduces_cost_their_bytes_over_the_engine_links() {
    use crate::cost::CostModel;
    let coeffs = |sets: &[&str]| {
        let mut all = vec!["model.preset=\"Qwen2.5-14B\"", "cluster.nodes=2"];
        all.extend_from_slice(sets);
        let s = load(BASE, &all).unwrap();
        let costs = crate::costs::analytic::AnalyticCosts::new(&s);
        let w = &s.cluster.workers[0];
        (costs.decode_coeffs(w), costs.prefill_coeffs(w))
    };
    let per_seq_fs = |sets: &[&str]| {
        let (d, p) = coeffs(sets);
        (d.allreduce_fs_per_seq, p.allreduce_fs_per_token)
    };
    let bytes = |t: f64| 48.0 * 2.0 * 2.0 * 5120.0 * 2.0 * (t - 1.0) / t;
    assert_eq!(per_seq_fs(&["rollout.tp=1"]), (0, 0));
    let inside = crate::time::secs_to_fs(bytes(4.0) / 450e9);
    assert_eq!(per_seq_fs(&["rollout.tp=4"]), (inside, inside));
    let across = crate::time::secs_to_fs(bytes(16.0) / 50e9);
    assert_eq!(per_seq_fs(&["rollout.tp=16"]), (across, across));
    // 1.47 MB per token inside the node (~3.3 µs), 1.84 MB across it (~37 µs).
    assert!((3_200_000_000..3_400_000_000).contains(&inside) && (36_000_000_000..38_000_000_000).contains(&across));
    // Each all-reduce's latency, in the iteration overhead: the framework's 6 µs inside a node, 50 µs across
    // nodes (NCCL over the NICs): 2 per layer × 48 layers × 44 µs more.
    let overhead = |sets: &[&str]| coeffs(sets).0.overhead_fs as i128;
    let more = overhead(&["rollout.tp=16"]) - overhead(&["rollout.tp=4"]);
    assert_eq!(more, crate::time::secs_to_fs(2.0 * 48.0 * 44e-6) as i128);
    let set = overhead(&["rollout.tp=16", "rollout.tp_allreduce_internode_us=6"]) - overhead(&["rollout.tp=4"]);
    assert_eq!(set, 0);
}

/// Small-batch decode against standalone vLLM's published figures (Lambda's vLLM benchmark, CUDA graphs, multi-step
/// scheduling, so ~0.3 ms of host time a token): the presets' constants were fitted on the H100 points, the GPU's
/// `hbm_efficiency_vs_h100` and `layer_floor_vs_h100` on the A100's two Llama-3-8B points; Llama-3-70B on two A100s
/// checks them (docs/fidelity.md, the decode item).
#[test]
fn small_batch_decode_matches_standalone_vllm_on_h100_and_a100() {
    use crate::cost::CostModel;
    let ms_per_token = |gpu: &str, model: &str, tp: u32, batch: u64| {
        let sets = [
            format!("cluster.gpu=\"{gpu}\""),
            format!("model.preset=\"{model}\""),
            format!("rollout.tp={tp}"),
            "rollout.iteration_overhead_ms=0.3".to_string(),
            // Room to train the 70B model and to hold its sequences at tp 2 (the memory checks; Lambda's engines
            // ran 2,048-token contexts); decode is priced per engine.
            "cluster.nodes=4".to_string(),
            "workload.max_prompt_tokens=1024".to_string(),
            "workload.max_response_tokens=1024".to_string(),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let s = load(BASE, &sets).unwrap();
        let costs = crate::costs::analytic::AnalyticCosts::new(&s);
        // The measured tokens' contexts: ~700 tokens a sequence (short prompts, hundreds of tokens generated).
        costs.decode_coeffs(&s.cluster.workers[0]).iteration_ns(batch, 700 * batch) as f64 * 1e-6
    };
    for (gpu, model, tp, batch, published) in [
        ("H100", "Llama-3-8B", 1, 1, 7.05),
        ("H100", "Llama-3-8B", 2, 1, 4.9),
        ("H100", "Llama-3-70B", 4, 1, 17.0),
        ("A100", "Llama-3-8B", 1, 1, 11.42),
        ("A100", "Llama-3-8B", 2, 1, 7.22),
        ("A100", "Llama-3-70B", 2, 2, 48.9),
    ] {
        let ms = ms_per_token(gpu, model, tp, batch);
        assert!((ms / published - 1.0).abs() < 0.03, "{model} tp {tp} on {gpu}: {ms:.2} ms, published {published}");
    }
}

/// Decode streams the weights at `hbm_efficiency` of peak HBM and reads the KV cache at `kv_read_efficiency`, the
/// attention kernel's own share. Worked by hand for Qwen2.5-14B (48 layers, 8 KV heads of 128) on H100 (3,350 GB/s)
/// at tp 4 under the default framework (verl-fsdp2: 0.885 and 0.45).
#[test]
fn decode_reads_kv_at_its_own_efficiency() {
    use crate::cost::CostModel;
    let coeffs = |sets: &[&str]| {
        let mut all = vec!["model.preset=\"Qwen2.5-14B\"", "rollout.tp=4"];
        all.extend_from_slice(sets);
        let s = load(BASE, &all).unwrap();
        let costs = crate::costs::analytic::AnalyticCosts::new(&s);
        costs.decode_coeffs(&s.cluster.workers[0])
    };
    // One context token: K and V, 48 layers, 8 KV heads of 128, bf16, split over 4 GPUs: 49,152 bytes per GPU.
    let kv_bytes = 2.0 * 48.0 * 8.0 * 128.0 * 2.0 / 4.0;
    let preset = coeffs(&[]);
    assert_eq!(preset.kv_fs_per_token, crate::time::secs_to_fs(kv_bytes / (3350e9 * 0.45)));
    // Setting the field moves only the KV line; the weights keep `hbm_efficiency`.
    let set = coeffs(&["rollout.kv_read_efficiency=0.9"]);
    assert_eq!(set.kv_fs_per_token, crate::time::secs_to_fs(kv_bytes / (3350e9 * 0.9)));
    assert_eq!(set.weights_fs, preset.weights_fs);
    let hbm = coeffs(&["rollout.hbm_efficiency=0.4425"]);
    assert_eq!(hbm.kv_fs_per_token, preset.kv_fs_per_token);
    assert!(hbm.weights_fs.abs_diff(preset.weights_fs * 2) <= 1, "half the weights' bandwidth, twice the time");
    // SGLang-based presets read KV at FlashInfer's ~0.8 of HBM (its decode measured 84 %, flash-attention #1572).
    assert_eq!(
        coeffs(&["framework.preset=\"slime\""]).kv_fs_per_token,
        crate::time::secs_to_fs(kv_bytes / (3350e9 * 0.8))
    );
}

/// A trainer on Blackwell against the same training step measured on H200 and B200 (Stas Bekman's ml-engineering,
/// insights/when-to-upgrade-gpus: Llama-3.1-8B, bf16, 8 GPUs, DeepSpeed ZeRO-2, one 8,192-token sequence per GPU, no
/// activation checkpointing; torch 2.13 / CUDA 13.0 on both, FlashAttention 3 on H200 and 4 (beta) on B200): 461
/// model TFLOP/s a GPU on H200, 778 on B200, 1.69× (its FLOPs: 6·N per token, N without the looked-up embedding,
/// and causal attention 6·s²·heads·head_dim·layers per sequence). rlsim's trainer at the GPUs' achievable matmul
/// rates gives 2.15× (the rates alone 2.20×); B200's `train_efficiency_vs_h100` (0.771) was fitted on the measured
/// ratio (778 / 461 = 1.688) under the default framework preset (verl-fsdp2), and the H200's own figure checks the
/// trainer's `mfu` (fitted on H20) on a third GPU. The share scales both training passes, and neither prefill nor
/// decode.
#[test]
fn training_on_b200_matches_the_same_stack_h200_measurement() {
    use crate::cost::CostModel;
    let base =
        ["model.preset=\"Llama-3.1-8B\"", "training.gradient_checkpointing=false", "training.micro_batch_tokens=8192"];
    let run = |gpu: &str, sets: &[&str]| {
        let g = format!("cluster.gpu=\"{gpu}\"");
        let mut all = vec![g.as_str(), "workload.max_response_tokens=8192"];
        all.extend_from_slice(&base);
        all.extend_from_slice(sets);
        let (_, shape, s) = train_cost_of(&all, &[8192; 8]);
        (shape.passes(&[8192; 8]), s)
    };
    let tflops_per_gpu = |gpu: &str, sets: &[&str]| {
        let (passes, s) = run(gpu, sets);
        let (n, seq) = (s.model.forward_flops_per_token() / 2.0, 8192.0f64);
        let attention = 6.0 * seq * seq * (s.model.heads * s.model.head_dim * s.model.layers) as f64;
        8.0 * (6.0 * n * seq + attention) / passes.update_s / 8.0 / 1e12
    };
    let (h200, b200) = (tflops_per_gpu("H200", &[]), tflops_per_gpu("B200", &[]));
    assert!((h200 / 461.0 - 1.0).abs() < 0.06, "H200 {h200:.0} TFLOP/s a GPU, measured 461");
    // The source's own runs of this step spread over 1.66–1.69×.
    assert!((b200 / h200 / 1.688 - 1.0).abs() < 0.01, "B200/H200 {:.3}, measured 1.688", b200 / h200);
    let unscaled = tflops_per_gpu("B200", &["cluster.train_efficiency_vs_h100=1"]);
    assert!(unscaled / h200 > 2.1, "B200/H200 at the achievable rates alone {:.3}", unscaled / h200);
    // The log-prob pass is scaled as the update is; prefill and decode are not.
    let half = ["cluster.train_efficiency_vs_h100=0.5"];
    let (logprob_1, logprob_half) = (run("B200", &[]).0.logprob_s, run("B200", &half).0.logprob_s);
    assert!(logprob_half > 1.5 * logprob_1, "log-prob {logprob_1} s at 0.771, {logprob_half} s at 0.5");
    let engine = |sets: &[&str]| {
        let mut all = vec!["cluster.gpu=\"B200\""];
        all.extend_from_slice(&base);
        all.extend_from_slice(sets);
        let s = load(BASE, &all).unwrap();
        let costs = crate::costs::analytic::AnalyticCosts::new(&s);
        let w = &s.cluster.workers[0];
        (costs.decode_coeffs(w).iteration_ns(64, 64 * 2048), costs.prefill_coeffs(w).prefill_fs(8192, 4))
    };
    assert_eq!(engine(&[]), engine(&half));
    // GB200 takes the B200's share (the same architecture; not measured on its own).
    let gb200 = crate::hardware::gpu_preset("GB200").unwrap();
    assert_eq!(gb200.train_efficiency_vs_h100, crate::hardware::gpu_preset("B200").unwrap().train_efficiency_vs_h100);
}

/// MLA's widths come with its KV latent, within bounds; a preset's are kept unless set, and a resolved file repeats
/// them.
#[test]
fn latent_attention_widths_without_a_latent_or_out_of_bounds_are_refused() {
    let big = ["cluster.gpu=\"H200\"", "cluster.nodes=16", "rollout.tp=16"];
    let e = err(&[&["model.preset=\"DeepSeek-V3\"", "model.kv_lora_rank=0"][..], &big[..]].concat());
    assert_has(&e, &["field `model.kv_lora_rank`", "0 turns multi-head latent attention off", "expected them 0 too"]);
    let e = err(&["model.qk_rope_head_dim=64"]);
    assert_has(&e, &["field `model.qk_rope_head_dim`", "expected model.kv_lora_rank"]);
    let e = err(&["model.q_lora_rank=1536"]);
    assert_has(&e, &["field `model.q_lora_rank`", "expected model.kv_lora_rank"]);
    let e = err(&["model.kv_lora_rank=100000"]);
    assert_has(&e, &["field `model.kv_lora_rank`", "must be at most 65536 (MLA's key/value latent width), got 100000"]);
    let s = load(BASE, &["model.preset=\"DeepSeek-R1\"", "cluster.gpu=\"H200\"", "cluster.nodes=16", "rollout.tp=16"])
        .unwrap();
    assert_eq!((s.model.name.as_str(), s.model.kv_lora_rank, s.model.qk_rope_head_dim), ("DeepSeek-R1", 512, 64));
    // Turning MLA off in a preset leaves plain attention over its 128 KV heads.
    let off =
        ["model.preset=\"DeepSeek-V3\"", "model.kv_lora_rank=0", "model.q_lora_rank=0", "model.qk_rope_head_dim=0"];
    let s = load(BASE, &[&off[..], &big[..]].concat()).unwrap();
    assert!(!s.model.is_mla() && s.model.name == "DeepSeek-V3 (modified)");
    // The resolved file loads as the same model: the preset's own name, the latent still off; a preset's experts
    // turned off stay off too.
    let again = Scenario::from_text(&s.resolved_toml(), Path::new("r.toml"), &[]).unwrap();
    assert_eq!(again.model, s.model);
    let dense = [
        "model.preset=\"Qwen3-30B-A3B\"",
        "model.experts=0",
        "model.experts_per_token=0",
        "model.active_params_b=30.5",
    ];
    let dense = load(BASE, &dense).unwrap();
    let again = Scenario::from_text(&dense.resolved_toml(), Path::new("r.toml"), &[]).unwrap();
    assert_eq!((again.model.experts, again.model.name.as_str()), (0, "Qwen3-30B-A3B (modified)"));
    assert_eq!(again.model, dense.model);
}

/// Speculative decoding: k draft tokens through a one-layer head, verified in one target pass, E = 1 + a + … + a^k
/// tokens a step; the engine's per-token costs are the step's divided by E. Worked by hand for Qwen2.5-7B on one H100
/// (28 layers), k = 1: reads and fixed costs (1 + 1/28)/E of a plain step plus one LM-head read, FLOPs
/// (2 + 1/28)/E plus one LM-head product, the host loop once a step.
#[test]
fn speculative_decoding_divides_a_steps_costs_by_its_expected_tokens() {
    use crate::cost::CostModel;
    let coeffs = |sets: &[&str]| {
        let s = load(BASE, sets).unwrap();
        let costs = crate::costs::analytic::AnalyticCosts::new(&s);
        (costs.decode_coeffs(&s.cluster.workers[0]), s)
    };
    let (plain, s) = coeffs(&[]);
    let (spec, s1) = coeffs(&["rollout.speculative_tokens=1", "rollout.speculative_acceptance=1"]);
    assert_eq!(s1.rollout.tokens_per_step(), 2.0);
    let (d, e) = (1.0 / 28.0, 2.0);
    let host_loop = crate::time::secs_to_fs(s.rollout.iteration_overhead_s) as f64;
    let gpu = &s.cluster.workers[0].gpu;
    let hbm = gpu.hbm_gbytes_per_s * 1e9 * s.rollout.hbm_efficiency;
    let flops = gpu.bf16_tflops * 1e12 * gpu.matmul_efficiency * s.rollout.decode_compute_efficiency;
    let head = 152_064.0 * 3584.0;
    let near = |got: u64, want: f64, what: &str| assert!((got as f64 - want).abs() <= 2.0, "{what}: {got} vs {want}");
    near(spec.overhead_fs, (host_loop + (plain.overhead_fs as f64 - host_loop) * (1.0 + d)) / e, "overhead");
    let head_read = crate::time::secs_to_fs(head * 2.0 / hbm) as f64;
    near(spec.weights_fs, (plain.weights_fs as f64 * (1.0 + d) + head_read) / e, "weights");
    near(spec.kv_fs_per_token, plain.kv_fs_per_token as f64 * (1.0 + d) / e, "kv");
    let head_flops = crate::time::secs_to_fs(2.0 * head / flops) as f64;
    near(spec.compute_fs_per_seq, (plain.compute_fs_per_seq as f64 * (2.0 + d) + head_flops) / e, "compute");
    near(spec.attention_fs_per_token, plain.attention_fs_per_token as f64 * (2.0 + d) / e, "attention");
    // Each sequence is scheduled once a step; with tensor parallelism every verified position's activations cross
    // the all-reduces.
    near(spec.host_fs_per_seq, plain.host_fs_per_seq as f64 / e, "host per sequence");
    let (plain_tp2, _) = coeffs(&["rollout.tp=2"]);
    let (spec_tp2, _) = coeffs(&["rollout.tp=2", "rollout.speculative_tokens=1", "rollout.speculative_acceptance=1"]);
    assert!(plain_tp2.allreduce_fs_per_seq > 0);
    near(spec_tp2.allreduce_fs_per_seq, plain_tp2.allreduce_fs_per_seq as f64 * (2.0 + d) / e, "all-reduce");
    // E = 1 + a + … + a^k: three drafts at one half, 1.875 tokens a step.
    let s3 = load(BASE, &["rollout.speculative_tokens=3", "rollout.speculative_acceptance=0.5"]).unwrap();
    assert_eq!(s3.rollout.tokens_per_step(), 1.875);
    // An MoE verify pass routes every verified position: a batch of 4 touches the experts of 8 tokens.
    let moe = ["model.preset=\"Qwen3-30B-A3B\"", "rollout.speculative_tokens=1", "rollout.speculative_acceptance=1"];
    let (moe_spec, _) = coeffs(&moe);
    assert_eq!(moe_spec.positions_per_seq, 2);
    let touched = |c: &crate::costs::decode::DecodeCoeffs, b: u64| c.weights_read_fs(b) - c.weights_fs as u128;
    let one_position = crate::costs::decode::DecodeCoeffs { positions_per_seq: 1, ..moe_spec };
    assert_eq!(touched(&moe_spec, 4), touched(&one_position, 8));
    // It pays where decode is bound by reads (a lone sequence: ~1.7× fewer ns a token at 80 % acceptance of one
    // draft, at most E = 1.8) and costs where it is bound by FLOPs (a full batch computes rejected positions); with
    // nothing accepted every step is dearer than a plain one.
    let token_ns = |sets: &[&str], batch: u64| coeffs(sets).0.iteration_ns(batch, batch * 1000) as f64;
    let a8 = ["rollout.speculative_tokens=1", "rollout.speculative_acceptance=0.8"];
    let gain = token_ns(&[], 1) / token_ns(&a8, 1);
    assert!(gain > 1.5 && gain <= 1.8, "a lone sequence's gain {gain}");
    assert!(token_ns(&a8, 4096) > token_ns(&[], 4096));
    let a0 = ["rollout.speculative_tokens=1", "rollout.speculative_acceptance=0"];
    assert!(token_ns(&a0, 1) > token_ns(&[], 1));
    // Bad settings are refused by field, with no default acceptance.
    assert_has(
        &err(&["rollout.speculative_tokens=2"]),
        &["field `rollout.speculative_acceptance`", "missing", "no default"],
    );
    assert_has(
        &err(&["rollout.speculative_acceptance=0.8"]),
        &["field `rollout.speculative_acceptance`", "expected rollout.speculative_tokens"],
    );
    // An explicit 0 (a sweep's point) takes an acceptance and ignores it.
    let off = load(BASE, &["rollout.speculative_tokens=0", "rollout.speculative_acceptance=0.8"]).unwrap();
    assert_eq!((off.rollout.speculative_tokens, off.rollout.tokens_per_step()), (0, 1.0));
    assert_has(
        &err(&["rollout.speculative_tokens=1", "rollout.speculative_acceptance=1.5"]),
        &["field `rollout.speculative_acceptance`", "expected a chance in [0, 1]", "got 1.5"],
    );
    assert_has(
        &err(&["rollout.speculative_tokens=17", "rollout.speculative_acceptance=0.5"]),
        &["field `rollout.speculative_tokens`", "at most 16"],
    );
}
