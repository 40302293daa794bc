//! Hand-computed micro-scenarios: round hardware numbers so every duration can be worked out on paper.
//!
//! Model: 1e9 parameters (2 GB bf16), 1 layer, 1 KV head of 256 dims → 1,024 bytes of KV per token; its embedding
//! is tied to the head, so every parameter is read and multiplied (2·N FLOPs per token).
//! GPU: 1 TB/s HBM at efficiency 1 → weights read in 2 ms, one KV token in 1.024 ns; 1,000 TFLOP/s, so the compute
//! terms (2 µs per sequence) never dominate; 1 ms overhead per engine iteration.
//! Decode iteration = 1 ms + 2 ms + 1.024 ns × context tokens. Prefill of ≤ 1,000 tokens = 1 ms + 2 ms.

use rlsim_sim::scenario::Scenario;
use rlsim_sim::simulator::simulate;
use rlsim_sim::timeline::SpanKind;
use std::path::{Path, PathBuf};

fn micro(pipeline: &str, gpus: u32, lengths: &str, extra: &str) -> String {
    format!(
        r#"
name = "micro"
[framework]
preset = "ideal"
[model]
params_b = 1.0
layers = 1
hidden = 256
heads = 1
kv_heads = 1
head_dim = 256
vocab = 1000
tied_embeddings = true
[cluster]
bf16_tflops = 1000.0
matmul_efficiency = 1.0
hbm_gbytes_per_s = 1000.0
memory_gb = 80.0
nvlink_gbytes_per_s = 100.0
pcie_gbytes_per_s = 10.0
network_gbits_per_s = 800.0
nodes = 1
gpus_per_node = {gpus}
[workload]
{lengths}
[training]
mfu = 0.5
micro_batch_overhead_ms = 0
logprob_passes = []
activation_reserve_gb = 0
[rollout]
tp = 1
hbm_efficiency = 1.0
kv_read_efficiency = 1.0
decode_compute_efficiency = 1.0
prefill_mfu = 1.0
iteration_overhead_ms = 1.0
[pipeline]
type = "{pipeline}"
weight_sync_fixed_s = 0.1
[pipeline.colocated]
switch_to_train_s = 0.5
switch_to_rollout_s = 0.25
{extra}
"#
    )
}

const ONE_SAMPLE: &str = r#"prompts_per_step = 1
samples_per_prompt = 1
max_response_tokens = 1000
response_tokens = { kind = "constant", tokens = 1000 }
prompt_tokens = { kind = "constant", tokens = 100 }"#;

fn spans_of(run: &rlsim_sim::simulator::SimRun, kind: SpanKind) -> Vec<(u64, u64)> {
    run.timeline.spans.iter().filter(|s| s.kind == kind).map(|s| (s.start.as_ns(), s.end.as_ns())).collect()
}

#[test]
fn one_worker_one_trajectory_colocated() {
    let text = micro("colocated", 1, &format!("{ONE_SAMPLE}\nsteps = 1"), "");
    let s = Scenario::from_text(&text, Path::new("micro.toml"), &[]).unwrap();
    let run = simulate(&s).unwrap();
    // Prefill 3 ms; 1,000 iterations over contexts 100..1099:
    // 1000 × 3 ms + 1.024 ns × (100·1000 + 999·1000/2) = 3 s + 613,888 ns.
    let rollout_end = 3_000_000 + 3_000_613_888;
    assert_eq!(spans_of(&run, SpanKind::Generate), vec![(0, rollout_end)]);
    assert_eq!(spans_of(&run, SpanKind::Rollout), vec![(0, rollout_end)]);
    // Switch to train 0.5 s (override); train 3 × (2·1e9·1,100 + attention 2·1 layer·1 head·256·1,100²)
    // / (1e15 · 0.5) = 13.2 ms + 3,717 ns (`ideal` framework: no recomputation);
    // switch back 0.25 s; sync 2 GB over NVLink 100 GB/s = 20 ms + 0.1 s fixed.
    let switch1 = rollout_end + 500_000_000;
    let train_end = switch1 + 13_203_717;
    let switch2 = train_end + 250_000_000;
    let end = switch2 + 120_000_000;
    assert_eq!(spans_of(&run, SpanKind::Switch), vec![(rollout_end, switch1), (train_end, switch2)]);
    assert_eq!(spans_of(&run, SpanKind::Train), vec![(switch1, train_end)]);
    assert_eq!(spans_of(&run, SpanKind::Sync), vec![(switch2, end)]);
    assert_eq!(run.timeline.end.as_ns(), end);
    let m = &run.report.summary;
    assert_eq!((m.generated_tokens, m.trained_tokens, m.steps), (1000, 1000, 1));
    assert_eq!(m.sim_time_s, end as f64 / 1e9);
    assert_eq!(run.report.steps[0].switch_s, 0.75);
    // The two directions apart: into training 0.5 s, back into rollout 0.25 s (that span carries the weights it
    // loads, the trainer's version after the step).
    assert_eq!((run.report.steps[0].switch_to_train_s, run.report.steps[0].switch_to_rollout_s), (0.5, 0.25));
    let switches: Vec<_> = run.timeline.spans.iter().filter(|s| s.kind == SpanKind::Switch).collect();
    assert_eq!((switches[0].version, switches[1].version), (None, Some(1)));
    assert_eq!(m.max_staleness, 0);
}

#[test]
fn activation_traffic_adds_streamed_bytes_to_training() {
    // The case above with the trainer's activation traffic priced (framework.activation_traffic = 1, HBM 1 TB/s).
    // Per token: q = kv = 256 wide; attention holds 256·(2·256 + 2·256) = 262,144 parameters, the (tied) head
    // 256,000, so the FFN holds 1e9 − 256,000 − 262,144 = 999,481,856 = 3·256·f: 3·f = 3,904,226. One layer
    // streams 10·256 + 4·256 + 4·256 + 3,904,226 = 3,908,834 bf16 elements, and the logits 8 · 1,000 bytes:
    // 7,825,668 bytes per token per forward. The update (no recomputation: 3 forwards' worth) of 1,100 tokens adds
    // 3 · 1,100 · 7,825,668 B / 1e12 B/s = 25,824,704.4 ns to the 13,203,717.12 ns of matmuls and attention.
    let text = micro("colocated", 1, &format!("{ONE_SAMPLE}\nsteps = 1"), "")
        .replace("preset = \"ideal\"\n", "preset = \"ideal\"\nactivation_traffic = 1.0\n");
    let s = Scenario::from_text(&text, Path::new("micro.toml"), &[]).unwrap();
    let run = simulate(&s).unwrap();
    let train = spans_of(&run, SpanKind::Train);
    assert_eq!(train.len(), 1);
    let ns = train[0].1 - train[0].0;
    assert!((39_028_421..=39_028_422).contains(&ns), "train {ns} ns");
}

fn two_sample_trace(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("two.csv");
    std::fs::write(&p, "step,group,prompt_tokens,response_tokens\n0,0,100,10\n0,0,100,20\n").unwrap();
    p
}

#[test]
fn two_trajectories_of_known_lengths_share_a_batch_then_one_runs_alone() {
    let dir = std::env::temp_dir().join(format!("rlsim-micro-{}", std::process::id()));
    two_sample_trace(&dir);
    let lengths = "prompts_per_step = 1\nsamples_per_prompt = 2\nsteps = 1\nmax_response_tokens = 100\ntrace = { path = \"two.csv\" }";
    let s = Scenario::from_text(&micro("colocated", 1, lengths, ""), &dir.join("micro.toml"), &[]).unwrap();
    let run = simulate(&s).unwrap();
    // One prefill of the shared 100-token prompt (prefix cached for the sibling): 3 ms.
    // 10 iterations with both: 30 ms + 1.024 ns × (200·10 + 2·45) = 33,002,140.16 ns → the first finishes at
    // 33,002,141 ns (events round up to the next ns). The survivor (context 110) runs 10 more:
    // 30 ms + 1.024 ns × (110·10 + 45) = 30,001,172.48 ns → exact end 63,003,312.64 ns → 63,003,313 ns.
    assert_eq!(spans_of(&run, SpanKind::Generate), vec![(0, 33_002_141), (0, 63_003_313)]);
    let tokens: Vec<u64> =
        run.timeline.spans.iter().filter(|s| s.kind == SpanKind::Generate).map(|s| s.tokens).collect();
    assert_eq!(tokens, vec![10, 20]);
    // Train on samples of 110 and 120 tokens: 3 × (2e9 · 230 + 512 · (110² + 120²)) / 5e14 = 2.76 ms + 81 ns.
    let train: Vec<(u64, u64)> = spans_of(&run, SpanKind::Train);
    let start = 63_003_313 + 500_000_000;
    assert_eq!(train, vec![(start, start + 2_760_081)]);
    assert_eq!(run.timeline.counters["prefill_tokens"], 100);
}

#[test]
fn disaggregated_overlaps_the_next_rollout_with_training_and_is_one_step_stale() {
    let text = micro("disaggregated", 2, &format!("{ONE_SAMPLE}\nsteps = 2"), "");
    let s = Scenario::from_text(&text, Path::new("micro.toml"), &[]).unwrap();
    assert_eq!(s.cluster.workers.len(), 2);
    let run = simulate(&s).unwrap();
    let r = 3_003_613_888u64; // one rollout, as above
    let train = 13_203_717;
    let sync = 120_000_000; // 2 GB over the node's NVLink (100 GB/s) + 0.1 s
                            // Rollout 1 starts as soon as rollout 0 ends, with the v0 weights, while step 0 trains.
    assert_eq!(spans_of(&run, SpanKind::Generate), vec![(0, r), (r, 2 * r)]);
    assert_eq!(spans_of(&run, SpanKind::Train), vec![(r, r + train), (2 * r + sync, 2 * r + sync + train)]);
    // Sync after rollout 1 (both pools), and a final one after the last step.
    let syncs = spans_of(&run, SpanKind::Sync);
    assert_eq!(syncs.len(), 4);
    assert_eq!(syncs[0], (2 * r, 2 * r + sync));
    assert_eq!(run.timeline.end.as_ns(), 2 * r + 2 * sync + train);
    let m = &run.report.summary;
    assert_eq!(m.staleness_histogram, vec![(0, 1000), (1, 1000)]);
    assert_eq!(m.mean_staleness, 0.5);
    assert_eq!(run.report.steps.len(), 2);
    // A step ends when its new weights reach the rollout pool: step 0's sync waits for rollout 1.
    assert_eq!(run.report.steps[0].end_s, (2 * r + sync) as f64 / 1e9);
    assert_eq!(run.report.steps[1].end_s, (2 * r + 2 * sync + train) as f64 / 1e9);
}
