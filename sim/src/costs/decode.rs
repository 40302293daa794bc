//! Decode and prefill iteration times of a continuous-batching engine, with an exact closed-form interval sum.
//!
//! One decode iteration with batch B and total context C (tokens of KV read) takes
//!   t(B, C) = overhead + (host + allreduce)·B + max(weights(B) + kv·C,  compute·B + attention·C)
//! — host work and the tensor-parallel all-reduce of each running sequence's new token (neither overlaps the
//! matmuls), then the memory-bound term (read the weights — for an MoE model the experts
//! B tokens touch — and the whole KV cache once) against the compute-bound term (the matmul FLOPs of B new tokens
//! plus their attention over C context tokens). Between two batch changes every running sequence gains one token per
//! iteration, so iteration k of an interval reads C + k·B tokens and the interval's length is a sum of the maximum
//! of two arithmetic series, computed exactly in integer femtoseconds. An engine whose reads and FLOPs do not
//! overlap (`serial`: a CPU's GEMM packs each weight matrix, then multiplies) takes the sum of the two lines
//! instead of their maximum, one arithmetic series.

/// Per-iteration decode cost coefficients, integer femtoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeCoeffs {
    /// Fixed per iteration: scheduler, sampling, kernel launches, tensor-parallel all-reduce latencies.
    pub overhead_fs: u64,
    /// Host work per running sequence per iteration (outside the GPU's max).
    pub host_fs_per_seq: u64,
    /// Moving one running sequence's activations through the tensor-parallel all-reduces of an iteration (outside
    /// the GPU's max: each all-reduce waits for the matmul before it and the next waits for it); 0 without tp.
    pub allreduce_fs_per_seq: u64,
    /// Reading the worker's share of the weights every token uses (all of a dense model's).
    pub weights_fs: u64,
    /// Reading the worker's share of all routed experts' weights (MoE; 0 for dense models).
    pub expert_weights_fs: u64,
    /// Routed experts per layer and experts per token (0: dense); a batch of B reads 1 − (1 − k/E)^B of them.
    pub experts: u32,
    pub experts_per_token: u32,
    /// Reading one context token's KV cache.
    pub kv_fs_per_token: u64,
    /// Matmul FLOPs of one new token.
    pub compute_fs_per_seq: u64,
    /// Attention FLOPs of one new token per context token.
    pub attention_fs_per_token: u64,
    /// The reads and the FLOPs happen one after the other (the iteration takes their sum), not overlapped (max).
    pub serial: bool,
    /// Identical sequences each running sequence stands for (a coarse-grained run, `crate::coarsen`; 0 or 1:
    /// itself). The per-sequence and per-token coefficients above already include them; this is for the experts,
    /// which a batch touches by its real token count.
    pub copies_per_seq: u32,
    /// Token positions each running sequence pushes through the experts' router per iteration's pass (0 or 1: one;
    /// k + 1 under speculative decoding, whose verify pass runs every draft position): the experts a batch touches
    /// are those of batch × copies × positions tokens.
    pub positions_per_seq: u32,
}

/// Sum of a + d·k for k in [s, e).
fn series(a: u128, d: u128, s: u128, e: u128) -> u128 {
    if e <= s {
        return 0;
    }
    let n = e - s;
    n * a + d * ((s + e - 1) * n / 2)
}

impl DecodeCoeffs {
    /// Femtoseconds to read the weights a batch of `batch` tokens uses (every expert a token is routed to).
    pub fn weights_read_fs(&self, batch: u64) -> u128 {
        if self.experts == 0 || self.expert_weights_fs == 0 {
            return self.weights_fs as u128 + self.expert_weights_fs as u128;
        }
        let miss = 1.0 - self.experts_per_token as f64 / self.experts as f64;
        let tokens = batch
            .saturating_mul(self.copies_per_seq.max(1) as u64)
            .saturating_mul(self.positions_per_seq.max(1) as u64);
        let touched = 1.0 - miss.powi(tokens.clamp(1, i32::MAX as u64) as i32);
        self.weights_fs as u128 + (self.expert_weights_fs as f64 * touched).round() as u128
    }

    /// Per-iteration time outside the GPU's max: fixed overhead plus host work and all-reduce transfer per running
    /// sequence.
    fn fixed_fs(&self, batch: u64) -> u128 {
        self.overhead_fs as u128 + (self.host_fs_per_seq as u128 + self.allreduce_fs_per_seq as u128) * batch as u128
    }

    /// One iteration in whole nanoseconds (rounded up), as policies see it through `Estimates`.
    pub fn iteration_ns(&self, batch: u64, context: u64) -> u64 {
        self.iteration_fs(batch, context).div_ceil(crate::time::FS_PER_NS) as u64
    }

    /// One iteration with `batch` sequences reading `context` tokens of KV in total.
    pub fn iteration_fs(&self, batch: u64, context: u64) -> u128 {
        let memory = self.weights_read_fs(batch) + self.kv_fs_per_token as u128 * context as u128;
        let compute =
            self.compute_fs_per_seq as u128 * batch as u128 + self.attention_fs_per_token as u128 * context as u128;
        self.fixed_fs(batch) + if self.serial { memory + compute } else { memory.max(compute) }
    }

    /// `n` iterations from a batch of `batch` sequences whose contexts sum to `context`, each iteration adding
    /// `batch` tokens of context. Exactly equal to summing `iteration_fs` one iteration at a time.
    pub fn interval_fs(&self, batch: u64, context: u64, n: u64) -> u128 {
        if n == 0 {
            return 0;
        }
        let (b, c, n) = (batch as u128, context as u128, n as u128);
        // memory line m0 + m1·k, compute line c0 + c1·k
        let m0 = self.weights_read_fs(batch) + self.kv_fs_per_token as u128 * c;
        let m1 = self.kv_fs_per_token as u128 * b;
        let c0 = self.compute_fs_per_seq as u128 * b + self.attention_fs_per_token as u128 * c;
        let c1 = self.attention_fs_per_token as u128 * b;
        // The lines cross at most once: find the first k where the later-dominant line takes over.
        let total = if self.serial {
            series(m0 + c0, m1 + c1, 0, n)
        } else if m1 == c1 {
            if m0 >= c0 {
                series(m0, m1, 0, n)
            } else {
                series(c0, c1, 0, n)
            }
        } else if m1 > c1 {
            // memory ≥ compute from k0 on
            let k0 = if m0 >= c0 { 0 } else { (c0 - m0).div_ceil(m1 - c1) }.min(n);
            series(c0, c1, 0, k0) + series(m0, m1, k0, n)
        } else {
            // compute ≥ memory from k0 on (compute grows faster); before k0 memory is strictly larger
            let k0 = if c0 >= m0 { 0 } else { (m0 - c0).div_ceil(c1 - m1) }.min(n);
            series(m0, m1, 0, k0) + series(c0, c1, k0, n)
        };
        n * self.fixed_fs(batch) + total
    }

    /// The number of iterations, at most `max_n`, needed to cover `elapsed_fs` (the iteration in progress at
    /// that instant counts as done, since a running iteration is never cut).
    pub fn iterations_covering(&self, batch: u64, context: u64, elapsed_fs: u128, max_n: u64) -> u64 {
        let (mut lo, mut hi) = (0u64, max_n);
        if self.interval_fs(batch, context, hi) < elapsed_fs {
            return max_n;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.interval_fs(batch, context, mid) >= elapsed_fs {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }
}

/// Prefill cost coefficients, integer femtoseconds: t(P, n) = overhead + n·per_seq + allreduce·P + max(weights,
/// compute·P) for P new tokens in n sequences (the formula model has no per-sequence term; a measured profile of an
/// engine that prefills sequence by sequence has no shared weight read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefillCoeffs {
    pub overhead_fs: u64,
    pub per_seq_fs: u64,
    pub weights_fs: u64,
    pub compute_fs_per_token: u64,
    /// The tensor-parallel all-reduce transfer per prompt token (after the max, as in decode); 0 without tp.
    pub allreduce_fs_per_token: u64,
}

impl PrefillCoeffs {
    /// One prefill pass over `tokens` new tokens of `seqs` sequences (zero tokens cost nothing).
    pub fn prefill_fs(&self, tokens: u64, seqs: u64) -> u128 {
        if tokens == 0 {
            return 0;
        }
        self.overhead_fs as u128
            + self.per_seq_fs as u128 * seqs as u128
            + self.allreduce_fs_per_token as u128 * tokens as u128
            + (self.weights_fs as u128).max(self.compute_fs_per_token as u128 * tokens as u128)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn coeffs(o: u64, w: u64, kv: u64, c: u64, a: u64) -> DecodeCoeffs {
        DecodeCoeffs {
            overhead_fs: o,
            weights_fs: w,
            kv_fs_per_token: kv,
            compute_fs_per_seq: c,
            attention_fs_per_token: a,
            ..DecodeCoeffs::default()
        }
    }

    #[test]
    fn host_work_per_sequence_and_expert_reads() {
        let mut d = coeffs(10, 100, 0, 0, 0);
        d.host_fs_per_seq = 3;
        assert_eq!(d.iteration_fs(4, 0), 10 + 12 + 100);
        assert_eq!(d.interval_fs(4, 0, 5), 5 * 122);
        // 2 of 4 experts per token: one token reads half the expert weights, two read 1 − 1/4 of them
        d.expert_weights_fs = 1000;
        d.experts = 4;
        d.experts_per_token = 2;
        assert_eq!(d.weights_read_fs(1), 100 + 500);
        assert_eq!(d.weights_read_fs(2), 100 + 750);
        assert_eq!(d.iteration_fs(2, 0), 10 + 6 + 850);
        // The all-reduce transfer adds per sequence beside the host work, outside the max.
        d.allreduce_fs_per_seq = 4;
        assert_eq!(d.iteration_fs(2, 0), 10 + 2 * (3 + 4) + 850);
        assert_eq!(d.interval_fs(2, 0, 3), 3 * (10 + 14 + 850));
        let p = PrefillCoeffs {
            overhead_fs: 7,
            per_seq_fs: 5,
            weights_fs: 100,
            compute_fs_per_token: 3,
            allreduce_fs_per_token: 2,
        };
        // 2 sequences, 50 tokens: 7 + 10 + 100 + max(100, 150)
        assert_eq!(p.prefill_fs(50, 2), 7 + 10 + 100 + 150);
    }

    #[test]
    fn hand_computed_iteration_and_interval() {
        let d = coeffs(10, 100, 2, 30, 1);
        // B=2, C=10: memory 120, compute 70 → 130
        assert_eq!(d.iteration_fs(2, 10), 130);
        // three iterations: contexts 10, 12, 14 → 130 + 134 + 138
        assert_eq!(d.interval_fs(2, 10, 3), 402);
        // B=10, C=0: memory 100, compute 300 → compute-bound, grows by 10 per iteration (memory by 20): they cross
        // k=0: m=100 c=300 → 310; k=1: m=120 c=310 → 320 ... k=20: m=500, c=500 → 510; k=21: m=520 c=510 → 530
        let brute: u128 = (0..30).map(|k| d.iteration_fs(10, 10 * k)).sum();
        assert_eq!(d.interval_fs(10, 0, 30), brute);
    }

    #[test]
    fn serial_reads_and_flops_add_up() {
        let mut d = coeffs(10, 100, 2, 30, 1);
        d.serial = true;
        // B=2, C=10: memory 120 + compute 70
        assert_eq!(d.iteration_fs(2, 10), 10 + 190);
        // contexts 10, 12, 14: memory 120, 124, 128; compute 70, 72, 74
        assert_eq!(d.interval_fs(2, 10, 3), 30 + 190 + 196 + 202);
    }

    #[test]
    fn covering_counts_the_iteration_in_progress() {
        let d = coeffs(0, 100, 0, 0, 0);
        assert_eq!(d.iterations_covering(1, 0, 0, 10), 0);
        assert_eq!(d.iterations_covering(1, 0, 1, 10), 1);
        assert_eq!(d.iterations_covering(1, 0, 100, 10), 1);
        assert_eq!(d.iterations_covering(1, 0, 101, 10), 2);
        assert_eq!(d.iterations_covering(1, 0, 5000, 10), 10);
    }

    proptest! {
        #[test]
        fn closed_form_equals_per_iteration_sum(
            o in 0u64..1_000_000, w in 0u64..10_000_000, kv in 0u64..50_000, c in 0u64..10_000_000,
            a in 0u64..50_000, b in 1u64..512, ctx in 0u64..2_000_000, n in 0u64..3000,
            h in 0u64..10_000, ew in 0u64..10_000_000, moe in proptest::bool::ANY, serial in proptest::bool::ANY,
            ar in 0u64..100_000,
        ) {
            let mut d = coeffs(o, w, kv, c, a);
            d.host_fs_per_seq = h;
            d.allreduce_fs_per_seq = ar;
            d.serial = serial;
            if moe {
                d.expert_weights_fs = ew;
                d.experts = 128;
                d.experts_per_token = 8;
            }
            let brute: u128 = (0..n).map(|k| d.iteration_fs(b, ctx + k * b)).sum();
            prop_assert_eq!(d.interval_fs(b, ctx, n), brute);
        }
    }
}
