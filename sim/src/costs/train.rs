//! Data-parallel training of one RL batch: samples balanced over ranks, mini-batches that wait for their slowest
//! rank, attention FLOPs that grow with the square of the sequence, gradient syncs per optimizer step.
//!
//! Why per sample and not per token: a long-tailed batch is not divisible at will. verl balances whole samples
//! over data-parallel ranks (`get_seqlen_balanced_partitions`, equal counts), then each rank walks its share in
//! `mini_batches` chunks, and every optimizer step waits for the slowest rank. With few samples per rank and
//! mini-batch, one 28k-token sample sets the pace, so training stops halving when GPUs double (verl fully_async 7B
//! on H20: 157 s on 32 GPUs, 113 s on 64).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Which of `ranks` data-parallel ranks trains each sample: largest first onto the rank with the fewest tokens that
/// still has room (equal counts, balanced by sequence length as verl's partitions are); ties go to the lowest rank,
/// so the result is deterministic. The real backend's trainer splits its batches with this same function.
pub fn balanced_ranks(tokens: &[u64], ranks: usize) -> Vec<usize> {
    let ranks = ranks.max(1);
    let cap = tokens.len().div_ceil(ranks);
    let order = longest_first(tokens);
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = (0..ranks).map(|r| Reverse((0u64, r))).collect();
    let mut count = vec![0usize; ranks];
    let mut rank_of = vec![0usize; tokens.len()];
    for i in order {
        // A full rank popped here is dropped from the heap for good: it takes no more samples.
        let r = loop {
            let Reverse((load, r)) = heap.pop().expect("a rank with room remains");
            if count[r] < cap {
                count[r] += 1;
                heap.push(Reverse((load + tokens[i], r)));
                break r;
            }
        };
        rank_of[i] = r;
    }
    rank_of
}

/// Sample indices by length, longest first, ties by index. The keys are unique, so an unstable sort of packed
/// (u32::MAX − tokens, index) words gives the order of a stable sort of (Reverse(tokens), index) pairs, several times
/// faster (it runs once per train step over every sample of the batch).
fn longest_first(tokens: &[u64]) -> Vec<usize> {
    if tokens.iter().all(|&t| t <= u64::from(u32::MAX)) && tokens.len() <= u32::MAX as usize {
        let mut keys: Vec<u64> =
            tokens.iter().enumerate().map(|(i, &t)| (u64::from(u32::MAX) - t) << 32 | i as u64).collect();
        keys.sort_unstable();
        keys.into_iter().map(|k| (k & u64::from(u32::MAX)) as usize).collect()
    } else {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| (Reverse(tokens[i]), i));
        order
    }
}

/// Mini-batch `k` of `m` of one rank's share (indices in batch order): its k-th consecutive slice.
pub fn mini_batch_slice(share_len: usize, k: usize, m: usize) -> std::ops::Range<usize> {
    let m = m.max(1);
    k * share_len / m..(k + 1) * share_len / m
}

/// Padded micro-batches of the samples `idx` (of lengths `tokens`): sorted by length (then index) so padding stays
/// small, each holding at most `budget` padded tokens (count × its longest sample; at least one sample). The real
/// backend's trainer splits its micro-batches with this function, and a framework that pads
/// (`framework.remove_padding = false`) is priced on them.
pub fn padded_micro_batches(tokens: &[u64], idx: &[usize], budget: u64) -> Vec<Vec<usize>> {
    let mut sorted: Vec<usize> = idx.to_vec();
    sorted.sort_by_key(|&i| (tokens[i], i));
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for i in sorted {
        if !cur.is_empty() && (cur.len() as u64 + 1) * tokens[i] > budget {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(i);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The padded token slots that set a padding trainer's pace (the real backend's: each micro-batch is computed at its
/// longest sample, [`padded_micro_batches`] under `budget` tokens per mini-batch slice, the log-prob passes over the
/// update's micro-batches): the slowest rank's slots over its whole share (a log-prob pass), and the sum over the
/// optimizer steps of the slowest rank's slots in that step (the update). Returns (share, update slots, steps).
pub fn padded_slowest_rank_tokens(tokens: &[u64], ranks: usize, mini_batches: usize, budget: u64) -> (u64, u64, usize) {
    let ranks = ranks.max(1);
    let mut shares: Vec<Vec<usize>> = vec![Vec::new(); ranks];
    for (i, r) in balanced_ranks(tokens, ranks).into_iter().enumerate() {
        shares[r].push(i);
    }
    let m = mini_batches.min(tokens.len().div_ceil(ranks)).max(1);
    let slots = |idx: &[usize]| -> u64 {
        padded_micro_batches(tokens, idx, budget.max(1))
            .iter()
            .map(|mb| mb.len() as u64 * mb.iter().map(|&i| tokens[i]).max().unwrap_or(0))
            .sum()
    };
    // per_step[k][r]: rank r's slots in optimizer step k.
    let per_step: Vec<Vec<u64>> =
        (0..m).map(|k| shares.iter().map(|s| slots(&s[mini_batch_slice(s.len(), k, m)])).collect()).collect();
    let share = (0..ranks).map(|r| per_step.iter().map(|k| k[r]).sum::<u64>()).max().unwrap_or(0);
    let update = per_step.iter().map(|k| k.iter().copied().max().unwrap_or(0)).sum();
    (share, update, m)
}

/// What a pass costs per sample and per rank.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainShape {
    /// Data-parallel ranks (train GPUs / GPUs per sequence), at least 1.
    pub ranks: usize,
    /// GPUs sharing one sequence (sequence/tensor parallel).
    pub gpus_per_rank: u32,
    /// FLOP/s one rank achieves: GPUs per rank × the slowest GPU's peak × MFU.
    pub rank_flops: f64,
    /// Forward FLOPs per token from the matmuls: 2·N_active.
    pub flops_per_token: f64,
    /// Forward attention FLOPs per token² of a causal sequence (`ModelSpec::attention_flops_per_token_sq`).
    pub attention_flops_per_token_sq: f64,
    /// Optimizer steps per RL step.
    pub mini_batches: u32,
    /// Micro-batch budgets, tokens per GPU, of the update and of a log-prob pass.
    pub micro_batch_tokens: u32,
    pub logprob_micro_batch_tokens: u32,
    /// Fixed cost of one micro-batch, seconds.
    pub micro_batch_overhead_s: f64,
    /// Pipeline stages a rank's layers are split over (1: none). A 1F1B schedule of m micro-batches keeps each
    /// stage busy m of its m + p − 1 slots (the fill and drain bubble): one schedule per optimizer step, and one
    /// over a rank's whole share for a log-prob pass.
    pub pipeline_stages: u32,
    /// Backward reruns the forward (activation recomputation).
    pub recompute: bool,
    /// Time outside the matmuls on one GPU: seconds per token, and per token per token of its sequence (attention
    /// scores), of a log-prob pass and of the update — an eager framework's measured elementwise ops (framework
    /// `*_elementwise` summed over the layers, plus its per-token cost outside them), and the activations a GPU
    /// trainer streams through HBM (`activation_traffic`).
    pub logprob_token_s: f64,
    pub logprob_token_sq_s: f64,
    pub update_token_s: f64,
    pub update_token_sq_s: f64,
    /// And per sample (its per-head attention calls), of a log-prob pass and of the update.
    pub logprob_sample_s: f64,
    pub update_sample_s: f64,
    /// Micro-batches are padded to their longest sample (formed by [`padded_micro_batches`] per mini-batch slice,
    /// the log-prob passes running over the update's micro-batches, as the real backend does), and every sample of
    /// one costs as much as that sample; false: padding removed, each sample costs its own tokens.
    pub padded: bool,
}

/// Seconds of one RL step's passes, before any communication or offload.
#[derive(Clone, Debug, PartialEq)]
pub struct PassTimes {
    /// One forward-only pass over the batch (the slowest rank).
    pub logprob_s: f64,
    /// All mini-batches of the update, each as long as its slowest rank.
    pub update_s: f64,
}

impl TrainShape {
    /// Forward FLOPs of one sequence of `tokens` (prompt + response).
    pub fn forward_flops(&self, tokens: u64) -> f64 {
        let t = tokens as f64;
        self.flops_per_token * t + self.attention_flops_per_token_sq * t * t
    }

    /// Elementwise seconds of a sequence of `tokens` on one GPU, given per-sequence, per-token and per-token²
    /// rates.
    fn elementwise_s(tokens: u64, per_sample: f64, per_token: f64, per_token_sq: f64) -> f64 {
        let t = tokens as f64;
        per_sample + per_token * t + per_token_sq * t * t
    }

    /// Forward passes' worth of work in an update: forward + backward (twice the forward) + the recomputed forward
    /// when activations are not kept.
    pub fn update_passes(recompute: bool) -> f64 {
        if recompute {
            4.0
        } else {
            3.0
        }
    }

    fn update_factor(&self) -> f64 {
        Self::update_passes(self.recompute)
    }

    /// The micro-batches of a chunk of samples under a per-GPU token budget, and the token count each sample is
    /// computed at (its own, or its padded micro-batch's longest).
    fn layout<'a>(&self, chunk: &'a [u64], budget: u32) -> (f64, std::borrow::Cow<'a, [u64]>) {
        let gpus = self.gpus_per_rank.max(1) as u64;
        let n: u64 = chunk.iter().sum();
        if n == 0 || !self.padded {
            return ((n as f64 / gpus as f64 / budget.max(1) as f64).ceil(), std::borrow::Cow::Borrowed(chunk));
        }
        let idx: Vec<usize> = (0..chunk.len()).collect();
        // The budget is per GPU; a rank's GPUs share each micro-batch.
        let micro = padded_micro_batches(chunk, &idx, budget.max(1) as u64 * gpus);
        let mut padded = Vec::with_capacity(chunk.len());
        for m in &micro {
            let longest = m.iter().map(|&i| chunk[i]).max().unwrap_or(0);
            padded.extend(std::iter::repeat_n(longest, m.len()));
        }
        (micro.len() as f64, std::borrow::Cow::Owned(padded))
    }

    /// How much longer a 1F1B pipeline schedule of `micro` micro-batches takes than its stages' busy time:
    /// (m + p − 1) / m (Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters
    /// Using Megatron-LM", §2.2: bubble fraction (p − 1)/m of the ideal time).
    pub fn pipeline_factor(&self, micro: f64) -> f64 {
        let p = self.pipeline_stages.max(1) as f64;
        if p <= 1.0 || micro < 1.0 {
            1.0
        } else {
            (micro + p - 1.0) / micro
        }
    }

    /// Which rank trains each sample (see [`balanced_ranks`]).
    pub fn assign(&self, tokens: &[u64]) -> Vec<usize> {
        balanced_ranks(tokens, self.ranks)
    }

    /// Seconds of the log-prob pass and of the update over a batch of samples of `tokens` each (in batch order).
    pub fn passes(&self, tokens: &[u64]) -> PassTimes {
        let ranks = self.ranks.max(1);
        let rank_of = self.assign(tokens);
        let mut per_rank: Vec<Vec<u64>> = vec![Vec::new(); ranks];
        for (i, &t) in tokens.iter().enumerate() {
            per_rank[rank_of[i]].push(t);
        }
        let gpus = self.gpus_per_rank.max(1) as f64;
        // (micro-batches, the token count each sample is computed at) of a chunk under a token budget.
        let m = self.mini_batches.max(1) as usize;
        // Log-prob: one pass over each rank's whole share. A padding trainer (the real backend) runs it over the
        // update's micro-batches, formed per mini-batch slice under the update's budget.
        let mut logprob_s: f64 = 0.0;
        for share in &per_rank {
            let chunks: Vec<(&[u64], u32)> = if self.padded {
                (0..m).map(|k| (&share[mini_batch_slice(share.len(), k, m)], self.micro_batch_tokens)).collect()
            } else {
                vec![(&share[..], self.logprob_micro_batch_tokens)]
            };
            let mut s = 0.0;
            let mut schedule_micro = 0.0;
            for (chunk, budget) in chunks {
                let (micro, computed) = self.layout(chunk, budget);
                schedule_micro += micro;
                let flops: f64 = computed.iter().map(|&t| self.forward_flops(t)).sum();
                let elementwise: f64 = computed
                    .iter()
                    .map(|&t| {
                        Self::elementwise_s(t, self.logprob_sample_s, self.logprob_token_s, self.logprob_token_sq_s)
                    })
                    .sum();
                s += flops / self.rank_flops + elementwise / gpus + micro * self.micro_batch_overhead_s;
            }
            // The pass is one pipeline schedule over all the rank's micro-batches.
            logprob_s = logprob_s.max(s * self.pipeline_factor(schedule_micro));
        }
        // Update: mini-batch m of every rank is the m-th slice of its share; the step waits for the slowest rank.
        let mut update_s = 0.0;
        for k in 0..m {
            let mut slowest: f64 = 0.0;
            for share in &per_rank {
                let chunk = &share[mini_batch_slice(share.len(), k, m)];
                let (micro, computed) = self.layout(chunk, self.micro_batch_tokens);
                let flops: f64 = computed.iter().map(|&t| self.forward_flops(t)).sum::<f64>() * self.update_factor();
                let elementwise: f64 = computed
                    .iter()
                    .map(|&t| Self::elementwise_s(t, self.update_sample_s, self.update_token_s, self.update_token_sq_s))
                    .sum();
                let s = (flops / self.rank_flops + elementwise / gpus + micro * self.micro_batch_overhead_s)
                    * self.pipeline_factor(micro);
                slowest = slowest.max(s);
            }
            update_s += slowest;
        }
        PassTimes { logprob_s, update_s }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shape(ranks: usize, mini_batches: u32) -> TrainShape {
        TrainShape {
            ranks,
            gpus_per_rank: 1,
            rank_flops: 1.0,
            flops_per_token: 1.0,
            attention_flops_per_token_sq: 0.0,
            mini_batches,
            micro_batch_tokens: u32::MAX,
            logprob_micro_batch_tokens: u32::MAX,
            micro_batch_overhead_s: 0.0,
            pipeline_stages: 1,
            recompute: false,
            logprob_token_s: 0.0,
            logprob_token_sq_s: 0.0,
            update_token_s: 0.0,
            update_token_sq_s: 0.0,
            logprob_sample_s: 0.0,
            update_sample_s: 0.0,
            padded: false,
        }
    }

    #[test]
    fn slowest_rank_split_by_hand() {
        // Largest first onto the lightest rank with room (2 each): 40→r0, 30→r1, 20→r1 (30 < 40), 10→r0.
        // Shares in batch order: r0 [10, 40], r1 [20, 30]; both 50. A budget of 1 token puts each sample in a
        // micro-batch of its own, so the slots are the tokens.
        let slots = |t: &[u64], ranks, m| padded_slowest_rank_tokens(t, ranks, m, 1);
        assert_eq!(balanced_ranks(&[10, 20, 30, 40], 2), vec![0, 1, 1, 0]);
        assert_eq!(slots(&[10, 20, 30, 40], 2, 1), (50, 50, 1));
        // Two optimizer steps: slices r0 [10] | [40], r1 [20] | [30]: 20 + 40.
        assert_eq!(slots(&[10, 20, 30, 40], 2, 2), (50, 60, 2));
        // More mini-batches than samples per rank: one sample each, capped at 2 steps.
        assert_eq!(slots(&[10, 20, 30, 40], 2, 16), (50, 60, 2));
        assert_eq!(slots(&[10, 20, 30, 40], 1, 1), (100, 100, 1));
    }

    #[test]
    fn pipeline_stages_add_the_fill_and_drain_bubble() {
        // One rank, 4 samples of 10 tokens, a budget of 20 tokens: 2 micro-batches per schedule. On 4 stages a
        // 1F1B schedule of m = 2 takes m + p − 1 = 5 slots for 2 slots of work per stage: 2.5× its busy time.
        let mut s = shape(1, 1);
        s.micro_batch_tokens = 20;
        s.logprob_micro_batch_tokens = 20;
        let t = [10, 10, 10, 10];
        let flat = s.passes(&t);
        assert_eq!((flat.logprob_s, flat.update_s), (40.0, 120.0));
        s.pipeline_stages = 4;
        let piped = s.passes(&t);
        assert_eq!((piped.logprob_s, piped.update_s), (100.0, 300.0));
        // Two optimizer steps: each is its own schedule of one micro-batch, (1 + 3)/1 = 4× its 60 s.
        s.mini_batches = 2;
        assert_eq!(s.passes(&t).update_s, 480.0);
        // The log-prob pass stays one schedule over the rank's share.
        assert_eq!(s.passes(&t).logprob_s, 100.0);
        // Many micro-batches make the bubble small: (m + 3)/m.
        assert_eq!(s.pipeline_factor(397.0), 400.0 / 397.0);
        assert_eq!(s.pipeline_factor(0.0), 1.0);
    }

    #[test]
    fn hand_computed_balance_and_mini_batches() {
        // Two ranks of at most 3 samples, lengths 8, 4, 4, 2, 1, 1 largest first: 8→r0, 4→r1, 4→r1 (4 < 8),
        // 2→r0 (tie 8:8, lowest rank), 1→r1 (8 < 10), 1→r0 (r1 full): r0 {8, 2, 1} = 11, r1 {4, 4, 1} = 9.
        let s = shape(2, 1);
        let t = [8, 4, 4, 2, 1, 1];
        assert_eq!(s.assign(&t), vec![0, 1, 1, 0, 1, 0]);
        let p = s.passes(&t);
        assert_eq!(p.logprob_s, 11.0);
        assert_eq!(p.update_s, 33.0); // 3 × forward, one mini-batch
                                      // Three mini-batches of one sample per rank (batch order): r0 8|2|1, r1 4|4|1 → 3·(8 + 4 + 1)
        let three = shape(2, 3).passes(&t).update_s;
        assert_eq!(three, 39.0);
    }

    #[test]
    fn one_long_sample_sets_the_pace() {
        // 1 sample of 1000 and 63 of 10: doubling the ranks cannot go below the long sample. With equal counts the
        // long sample's rank still takes 7 (8 ranks, 8 each) or 3 (16 ranks, 4 each) of the short ones.
        let mut t = vec![1000u64];
        t.extend(std::iter::repeat_n(10, 63));
        let at = |r| shape(r, 1).passes(&t).logprob_s;
        assert_eq!(at(1), 1630.0);
        assert_eq!(at(8), 1070.0);
        assert_eq!(at(16), 1030.0);
    }

    #[test]
    fn attention_is_quadratic_and_recompute_adds_a_forward() {
        let mut s = shape(1, 1);
        s.attention_flops_per_token_sq = 0.5;
        assert_eq!(s.forward_flops(10), 10.0 + 50.0);
        s.recompute = true;
        assert_eq!(s.passes(&[10]).update_s, 240.0);
    }

    #[test]
    fn elementwise_time_per_token_and_per_token_squared() {
        // Two ranks of two GPUs each; samples 10 and 20 tokens on different ranks (one each).
        let mut s = shape(2, 1);
        s.gpus_per_rank = 2;
        s.rank_flops = 2.0;
        s.logprob_token_s = 1.0;
        s.logprob_token_sq_s = 0.5;
        s.update_token_s = 4.0;
        s.update_token_sq_s = 0.25;
        s.logprob_sample_s = 2.0;
        s.update_sample_s = 6.0;
        let p = s.passes(&[10, 20]);
        // log-prob, rank of the 20: 20 FLOPs / 2 + (2 + 20·1 + 400·0.5) / 2 GPUs = 10 + 111
        assert_eq!(p.logprob_s, 121.0);
        // update: 3 · 20 / 2 + (6 + 20·4 + 400·0.25) / 2 = 30 + 93
        assert_eq!(p.update_s, 123.0);
    }

    #[test]
    fn padded_slowest_rank_tokens_by_hand() {
        // One rank, one step, budget 10: sorted 2, 3, 5, 8 → [2, 3] (2·3 = 6), [5], [8]: 6 + 5 + 8 = 19 slots.
        assert_eq!(padded_slowest_rank_tokens(&[3, 8, 5, 2], 1, 1, 10), (19, 19, 1));
        // Two ranks: balanced 8→r0, 5→r1, 3→r1, 2→r0: r0 {8, 2} = 8 + 2 (2·8 > 10), r1 {5, 3} = 5 + 3 (2·5 = 10 fits:
        // 10): r0 10, r1 10; one step: update = max = 10.
        assert_eq!(padded_slowest_rank_tokens(&[3, 8, 5, 2], 2, 1, 10), (10, 10, 1));
        // Two steps on one rank, batch order [3, 8] | [5, 2]: [3], [8] (2·8 > 10) = 11, then [2, 5] = 10: 21.
        assert_eq!(padded_slowest_rank_tokens(&[3, 8, 5, 2], 1, 2, 10), (21, 21, 2));
        // Without padding to do (one token each) the slots are the tokens.
        let ones = [1u64; 6];
        assert_eq!(padded_slowest_rank_tokens(&ones, 2, 1, 100), (3, 3, 1));
    }

    #[test]
    fn padded_micro_batches_by_hand() {
        // Sorted 2, 3, 5, 8 (indices 3, 0, 2, 1) under 10 padded tokens: [2, 3] (2·3 = 6), then 5 would make
        // 3·5 = 15 > 10: [5] alone (5), 8 would make 2·8 = 16: [8].
        let t = [3, 8, 5, 2];
        assert_eq!(padded_micro_batches(&t, &[0, 1, 2, 3], 10), vec![vec![3, 0], vec![2], vec![1]]);
        // Priced padded: one rank, forward FLOPs = tokens; the micro-batch [2, 3] computes 3 + 3.
        let mut s = shape(1, 1);
        s.logprob_micro_batch_tokens = 10;
        s.micro_batch_tokens = 10;
        s.micro_batch_overhead_s = 100.0;
        assert_eq!(s.passes(&t).logprob_s, 18.0 + 2.0 * 100.0);
        s.padded = true;
        assert_eq!(s.passes(&t).logprob_s, (3.0 + 3.0 + 5.0 + 8.0) + 3.0 * 100.0);
        // Two GPUs per rank share a micro-batch of 2 × 10 padded tokens: [2, 3, 5] (3·5 = 15), [8] (the rank's
        // FLOP/s stays 1 here).
        s.gpus_per_rank = 2;
        assert_eq!(s.passes(&t).logprob_s, (5.0 + 5.0 + 5.0 + 8.0) + 2.0 * 100.0);
        // Two mini-batches: the log-prob pass runs over the update's micro-batches, slice by slice (batch order
        // [3, 8] | [5, 2]): [3], [8] | [2, 5] under 10 tokens.
        s.gpus_per_rank = 1;
        s.mini_batches = 2;
        s.logprob_micro_batch_tokens = 1000;
        assert_eq!(s.passes(&t).logprob_s, (3.0 + 8.0 + 5.0 + 5.0) + 3.0 * 100.0);
    }

    proptest! {
        #[test]
        fn longest_first_is_the_stable_order_by_length(t in proptest::collection::vec(0u64..50, 0..300)) {
            let mut reference: Vec<usize> = (0..t.len()).collect();
            reference.sort_by_key(|&i| (Reverse(t[i]), i));
            prop_assert_eq!(longest_first(&t), reference);
        }

        #[test]
        fn balanced_counts_and_bounds(t in proptest::collection::vec(1u64..5000, 1..200), ranks in 1usize..16,
                                      m in 1u32..6) {
            let s = shape(ranks, m);
            let rank_of = s.assign(&t);
            let cap = t.len().div_ceil(ranks);
            for r in 0..ranks {
                prop_assert!(rank_of.iter().filter(|&&x| x == r).count() <= cap);
            }
            let p = s.passes(&t);
            let total: u64 = t.iter().sum();
            let longest = *t.iter().max().unwrap() as f64;
            // never faster than perfect division, never slower than one rank doing everything
            prop_assert!(p.logprob_s >= total as f64 / ranks as f64 - 1e-9);
            prop_assert!(p.logprob_s >= longest);
            prop_assert!(p.logprob_s <= total as f64 + 1e-9);
            prop_assert!(p.update_s >= 3.0 * p.logprob_s - 1e-6 || m > 1);
        }
    }
}
