//! GPU specifications and the built-in presets.

use serde::{Deserialize, Serialize};

/// One GPU type: compute, memory and links.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuSpec {
    pub name: String,
    /// Dense bf16 peak, TFLOP/s.
    pub bf16_tflops: f64,
    /// The largest matmul rate measured on the GPU (maximum achievable matmul FLOP/s, "MAMF": the best of a sweep of
    /// large bf16 GEMM shapes) as a share of `bf16_tflops`: a GPU that throttles its clock under tensor load or
    /// whose datasheet assumes a clock it does not hold reaches less of its peak. Every compute rate of the cost
    /// model (the trainer's `mfu`, prefill's and decode's efficiencies) is a share of this achievable rate.
    pub matmul_efficiency: f64,
    /// HBM bandwidth, GB/s (10⁹ bytes per second).
    pub hbm_gbytes_per_s: f64,
    /// The share of `hbm_gbytes_per_s` this GPU's kernels reach relative to the H100's, on which the framework
    /// presets' `hbm_efficiency` was measured: the effective rate is `hbm_gbytes_per_s` × `hbm_efficiency` × this (1:
    /// as on an H100; A100 0.904, measured on decode's weight stream, see `gpu_preset`). Applies to every HBM stream
    /// the cost model prices (decode's weights and KV cache, the trainer's activation traffic).
    pub hbm_efficiency_vs_h100: f64,
    /// A decode layer's fixed cost under CUDA graphs on this GPU relative to the H100's, on which the presets'
    /// `graph_layer_us` was measured (1: as on an H100; A100 1.22, measured, see `gpu_preset`). Eager launches are the
    /// host's and are not scaled.
    pub layer_floor_vs_h100: f64,
    /// The share of its achievable matmul rate (`bf16_tflops` × `matmul_efficiency`) a trainer reaches on this GPU
    /// relative to an H100's, on which the trainer's `mfu` holds (1: as on an H100; B200 and GB200 0.771, measured,
    /// see `gpu_preset`). Scales the trainer's compute rate only (matmuls and attention); prefill and decode keep the
    /// GPU's achievable rate (not measured).
    pub train_efficiency_vs_h100: f64,
    /// Device memory, GB (10⁹ bytes, as vendors quote it).
    pub memory_gb: f64,
    /// NVLink bandwidth per GPU, one direction, GB/s.
    pub nvlink_gbytes_per_s: f64,
    /// Host↔device PCIe bandwidth achieved per GPU, GB/s.
    pub pcie_gbytes_per_s: f64,
    /// Inter-node network bandwidth per GPU (its NIC), Gbit/s.
    pub network_gbits_per_s: f64,
    /// Typical on-demand rental price, US dollars per GPU-hour (see `gpu_preset` for sources and dates).
    pub price_per_gpu_hour: f64,
}

/// Names of the built-in GPU presets.
pub const GPU_PRESETS: &[&str] = &["H100-SXM", "H800", "H20", "H200", "A100-80G", "A800", "B200", "GB200", "MI300X"];

/// Other names of a GPU preset, as (alias, preset): the SXM H100 and the 80 GB A100 are what RL papers and recipes
/// mean by "H100" and "A100" (the PCIe and 40 GB parts differ: give their figures explicitly).
pub const GPU_ALIASES: &[(&str, &str)] = &[("H100", "H100-SXM"), ("A100", "A100-80G")];

/// (name, bf16 TFLOP/s, achievable matmul share, HBM GB/s, decode's HBM share vs H100, decode layer floor vs H100,
/// trainer's share of the achievable rate vs H100, memory GB, NVLink GB/s, PCIe GB/s, network Gbit/s, US$ per GPU-hour)
type GpuRow = (&'static str, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64);

/// A built-in GPU by name (case-insensitive). Peak and bandwidth figures are NVIDIA's datasheet numbers (dense
/// bf16, no sparsity); PCIe is an achieved figure for Gen5 (Gen4 for A100) pinned-memory copies, not the link's
/// nominal rate; the network is one 400 Gbit/s NIC per GPU (200 for A100), the usual DGX/HGX build.
///
/// Prices (US$ per GPU-hour, on-demand, looked up 2026-11-23): H100-SXM 3.00, H200 4.00 and A100-80G 1.30 are the
/// middles of the "specialty cloud" on-demand ranges in Mercatus' May 2026 cloud GPU pricing guide (H100 SXM
/// 2.50–3.50, H200 3.50–4.50, A100 80GB 1.10–1.50; hyperscalers charge more, long-tail providers less); pricegpu's
/// early-2026 ranges agree (H100 SXM 2.49–3.99, A100 80GB 1.49–2.49). H800 and H20 are sold for the Chinese market
/// and no public on-demand list price was found: H800 is priced as the H100 it derives from, H20 at the A100's
/// figure (an estimate, not a quote). Set `cluster.price_per_gpu_hour` to your own rate.
///
/// A800: the A100 for the Chinese market with NVLink cut to 400 GB/s (200 per direction); priced as the A100.
///
/// B200 (NVIDIA HGX B200 datasheet): 2,250 TFLOP/s dense bf16 (18 PFLOPS for 8 GPUs), 8 TB/s HBM3e, 180 GB,
/// NVLink 5 at 1.8 TB/s per GPU (900 GB/s per direction); PCIe Gen5 host links; one 400 Gbit/s NIC per GPU.
/// GB200 (GB200 NVL72 datasheet, per GPU): 2,500 TFLOP/s dense bf16 (180 PFLOPS for 72), 8 TB/s, 186 GB, the same
/// NVLink (one NVLink domain spans the 72 GPUs of a rack: give `gpus_per_node` up to 72), and NVLink-C2C to its
/// Grace CPU (900 GB/s per superchip of two GPUs; 200 GB/s per GPU achieved is assumed). Neither has a public list
/// price we could cite: 5.00 and 6.00 US$ per GPU-hour are estimates.
///
/// MI300X (AMD's datasheet): 1,307 TFLOP/s dense bf16, 5.3 TB/s HBM3, 192 GB; Infinity Fabric 7 links × 64 GB/s per
/// direction = 448 GB/s to the other seven GPUs of an 8-GPU platform; PCIe Gen5 as for Hopper; one 400 Gbit/s NIC per
/// GPU; priced at the H100's 3.00 (an estimate: specialty clouds list MI300X at or below H100 rates).
///
/// Achievable matmul share (`matmul_efficiency`): the "Maximum Achievable Matmul FLOPS comparison table" of Stas
/// Bekman's ml-engineering (compute/accelerator/README.md; `mamf-finder.py`, bf16 inputs, the best of a shape sweep):
/// A100 SXM 271.2 of 312 TFLOP/s (0.869, A100-80G and A800), H100 SXM 794.5 of 989 (0.803, and "H200 is the
/// same"; H800 is the H100's die and power), B200 1,745 of 2,250 (0.776), GB200 1,822 of 2,500 (0.729), MI300X
/// 668.4 of 1,300 (0.514, ROCm 6.3 with TunableOp; 0.601 with ROCm 6.2 in an earlier edition). H20 is not in that
/// table: 0.961 is 142.25 of 148 TFLOP/s, the best bf16 `torch.matmul` of a square sweep (1,024–10,240) on an H20
/// (PyTorch 2.7, CUDA 12.8; zzc0721/torch-performance-test-data issue #77, 2025-10-17); the same script gives an H100
/// SXM 797.5 (issue #79), the table's 794.5 within 0.4 % (the H20's best is at the sweep's largest size, so 0.961 may
/// be a little low). An H20 runs 15 % of an H100's tensor throughput at 400 W, so power does not throttle it (until the
/// twelfth session, 2026-11-29, rlsim assumed GH200's 0.838). The trainer's `mfu` is fitted on H20, so a change here
/// moves the other GPUs' training (docs/fidelity.md).
///
/// Decode on other GPUs than the H100 (`hbm_efficiency_vs_h100`, `layer_floor_vs_h100`): the presets' decode
/// constants were fitted on standalone vLLM's batch-1 decode on H100 SXM (Lambda's vLLM benchmark; `framework`).
/// The same benchmark on A100-80GB SXM (LambdaLabsML/vllm-benchmark results/prompt_10 at f093afe9: Llama-3-8B at tp 1
/// 11.42 ms a token and at tp 2 7.22 ms, the request that ran alone; Llama-3-70B at tp 2 48.9 ms, the last two
/// requests together) is 10 % slower than those constants say on all three; the two 8B points give the weights at
/// 0.80 of the A100's 2,039 GB/s (0.904 of the H100's 0.885) and 61 µs a layer (1.22 × the H100's 50 µs), and the
/// 70B point, priced with them, lands within 1 % (A800: the A100's die). Only the weights' stream was measured: the
/// KV read and the trainer's activation traffic take the same share, an extrapolation. Every other GPU is taken to decode as an
/// H100 does (1 and 1): no measurement of its floor or decode bandwidth in the same setting was found
/// (docs/fidelity.md, "Unexplained", the decode item).
///
/// Training on Blackwell (`train_efficiency_vs_h100`): the same training step measured on H200 and B200 with one
/// software stack (Stas Bekman's ml-engineering, insights/when-to-upgrade-gpus, "Where the dense-path deficit comes
/// from": Llama-3.1-8B, bf16, 8 GPUs, DeepSpeed ZeRO-2, one 8,192-token sequence per GPU, no activation
/// checkpointing, torch 2.13 / CUDA 13.0, FlashAttention 3 on H200 and 4 on B200) runs at 461 and 778 model TFLOP/s
/// a GPU: 1.69×, where the two GPUs' achievable matmul rates (1,745 against 794.5) give 2.2× and rlsim's trainer at
/// them 2.15×. Its decomposition puts attention at 1.87× and everything else (the GEMMs, the elementwise work and
/// the collectives) at 1.67×, the HBM ratio: the source reads that path as bound by bandwidth and overhead at this
/// small per-GPU batch (skinny GEMMs) plus a younger sm_100 cuBLAS, so larger GEMMs would reach more of Blackwell's
/// rate. rlsim carries the whole gap as one share of the achievable rate, an extrapolation to other shapes and
/// stacks (Megatron-Core with Transformer Engine in the GB200 fidelity cases). 0.771 makes rlsim's ratio 1.688 (the
/// measured 778 / 461) under the default framework preset; GB200 takes the B200's figure (the same sm_100
/// architecture; not measured on GB200 or with Megatron). The H200's own 461 checks the trainer's `mfu` on a GPU it
/// was not fitted on (rlsim 444, −3.7 %). Every other GPU is 1: Hopper by definition, A100 and MI300X unmeasured.
pub fn gpu_preset(name: &str) -> Option<GpuSpec> {
    // (name, bf16 TFLOP/s, achievable matmul share, HBM GB/s, decode HBM share vs H100, decode layer floor vs H100,
    // trainer's share vs H100, memory GB, NVLink GB/s, PCIe GB/s, network Gbit/s, US$ per GPU-hour)
    let rows: [GpuRow; 9] = [
        ("H100-SXM", 989.0, 0.803, 3350.0, 1.0, 1.0, 1.0, 80.0, 450.0, 50.0, 400.0, 3.00),
        ("H800", 989.0, 0.803, 3350.0, 1.0, 1.0, 1.0, 80.0, 200.0, 50.0, 400.0, 3.00),
        ("H20", 148.0, 0.961, 4000.0, 1.0, 1.0, 1.0, 96.0, 450.0, 50.0, 400.0, 1.30),
        ("H200", 989.0, 0.803, 4800.0, 1.0, 1.0, 1.0, 141.0, 450.0, 50.0, 400.0, 4.00),
        ("A100-80G", 312.0, 0.869, 2039.0, 0.904, 1.22, 1.0, 80.0, 300.0, 25.0, 200.0, 1.30),
        ("A800", 312.0, 0.869, 2039.0, 0.904, 1.22, 1.0, 80.0, 200.0, 25.0, 200.0, 1.30),
        ("B200", 2250.0, 0.776, 8000.0, 1.0, 1.0, 0.771, 180.0, 900.0, 50.0, 400.0, 5.00),
        ("GB200", 2500.0, 0.729, 8000.0, 1.0, 1.0, 0.771, 186.0, 900.0, 200.0, 400.0, 6.00),
        ("MI300X", 1307.0, 0.514, 5300.0, 1.0, 1.0, 1.0, 192.0, 448.0, 50.0, 400.0, 3.00),
    ];
    let name = GPU_ALIASES.iter().find(|a| a.0.eq_ignore_ascii_case(name)).map_or(name, |a| a.1);
    rows.iter().find(|r| r.0.eq_ignore_ascii_case(name)).map(|r| GpuSpec {
        name: r.0.to_string(),
        bf16_tflops: r.1,
        matmul_efficiency: r.2,
        hbm_gbytes_per_s: r.3,
        hbm_efficiency_vs_h100: r.4,
        layer_floor_vs_h100: r.5,
        train_efficiency_vs_h100: r.6,
        memory_gb: r.7,
        nvlink_gbytes_per_s: r.8,
        pcie_gbytes_per_s: r.9,
        network_gbits_per_s: r.10,
        price_per_gpu_hour: r.11,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_preset_resolves() {
        for name in GPU_PRESETS {
            assert_eq!(&gpu_preset(name).unwrap().name, name);
        }
        assert_eq!(gpu_preset("h800").unwrap().nvlink_gbytes_per_s, 200.0);
        assert!(gpu_preset("V100").is_none());
        assert_eq!(gpu_preset("h100"), gpu_preset("H100-SXM"));
        for (alias, preset) in GPU_ALIASES {
            assert!(GPU_PRESETS.contains(preset) && !GPU_PRESETS.contains(alias), "{alias}");
        }
    }
}
