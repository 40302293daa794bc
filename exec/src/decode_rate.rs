//! Decode throughput of a model shape on a device: seconds per decode iteration at a batch and context, the bytes an
//! iteration must read (weights and KV cache), and the bandwidth that achieves against the device's measured read
//! bandwidth (the HBM roofline on a GPU). Also times the per-sequence reference decode, for the batched path's
//! speed-up.

use crate::model::{Gpt, GptConfig, KvCache, SeqCache};
use std::time::Instant;

/// One measured point.
#[derive(Clone, Debug)]
pub struct DecodeRate {
    pub batch: usize,
    /// Tokens each sequence had cached when timing began.
    pub context_tokens: usize,
    /// Median seconds of one decode iteration (the model's, without sampling), device synchronised.
    pub iteration_s: f64,
    /// Bytes one iteration must read: every weight but the embedding and position tables (of which it reads `batch`
    /// rows) and each sequence's K and V, all f32.
    pub bytes_read: f64,
}

impl DecodeRate {
    pub fn tokens_per_s(&self) -> f64 {
        self.batch as f64 / self.iteration_s
    }

    pub fn gbytes_per_s(&self) -> f64 {
        self.bytes_read / self.iteration_s / 1e9
    }
}

/// Bytes a decode iteration of `batch` sequences with `context_tokens` cached each must read.
pub fn decode_bytes(cfg: &GptConfig, batch: usize, context_tokens: usize) -> f64 {
    let tables = (cfg.vocab + cfg.context) * cfg.d_model;
    let weights = (cfg.parameter_count() - tables + 2 * batch * cfg.d_model) as f64 * 4.0;
    // Each sequence reads its cache plus the token it writes, K and V, every layer.
    let kv = (batch * (context_tokens + 1) * 2 * cfg.layers * cfg.d_model) as f64 * 4.0;
    weights + kv
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `reps` decode iterations (after one warm-up) of `batch` sequences holding `context_tokens` each. The model
/// needs `context_tokens + reps + 2` positions. The slots are claimed for timing (their values are whatever the
/// cache holds: attention's cost does not depend on them).
pub fn decode_rate(model: &Gpt, batch: usize, context_tokens: usize, reps: usize) -> candle_core::Result<DecodeRate> {
    let dev = model.device();
    let mut cache = KvCache::new(&model.cfg, batch, dev)?;
    for _ in 0..batch {
        cache.claim_for_timing(context_tokens)?;
    }
    let last: Vec<u32> = (0..batch as u32).map(|i| i % model.cfg.vocab as u32).collect();
    let mut times = Vec::with_capacity(reps);
    for rep in 0..=reps {
        dev.synchronize()?;
        let t0 = Instant::now();
        let logits = model.decode(&last, &mut cache)?;
        dev.synchronize()?;
        drop(logits);
        if rep > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    // Count the context of the middle timed iteration: the warm-up and reps / 2 timed ones wrote before it.
    let mid = context_tokens + 1 + reps / 2;
    Ok(DecodeRate {
        batch,
        context_tokens,
        iteration_s: median(times),
        bytes_read: decode_bytes(&model.cfg, batch, mid),
    })
}

/// Median seconds of one decode iteration of `batch` sequences with `context_tokens` cached each, batched (slots)
/// and per sequence (the reference: attention in a loop, caches grown by `cat`), both from the same prefilled state.
pub fn batched_and_looped_s(
    model: &Gpt,
    batch: usize,
    context_tokens: usize,
    reps: usize,
) -> candle_core::Result<(f64, f64)> {
    let dev = model.device();
    let prompt: Vec<u32> = (0..context_tokens as u32).map(|i| (i * 7 + 1) % model.cfg.vocab as u32).collect();
    let mut cache = KvCache::new(&model.cfg, batch, dev)?;
    let one = model.prefill_sequence(&prompt)?;
    for _ in 0..batch {
        let slot = cache.claim()?;
        model.prefill(&mut cache, slot, &prompt)?;
    }
    let mut caches: Vec<SeqCache> = vec![one; batch];
    let last = vec![1u32; batch];
    let (mut batched, mut looped) = (Vec::new(), Vec::new());
    // Interleaved, so both see the same machine load.
    for rep in 0..=reps {
        let t0 = Instant::now();
        let a = model.decode(&last, &mut cache)?;
        crate::device::wait_for(&a)?;
        let t1 = Instant::now();
        let b = model.decode_per_sequence(&last, &mut caches)?;
        crate::device::wait_for(&b)?;
        if rep > 0 {
            batched.push((t1 - t0).as_secs_f64());
            looped.push(t1.elapsed().as_secs_f64());
        }
    }
    Ok((median(batched), median(looped)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rlsim_sim::rng::RngStreams;

    fn model(d_model: usize, layers: usize, heads: usize, vocab: usize, context: usize) -> Gpt {
        let cfg = GptConfig { vocab, d_model, layers, heads, ffn: 4 * d_model, context };
        Gpt::new(cfg, &mut RngStreams::new(1).stream("init"), &Device::Cpu).unwrap()
    }

    #[test]
    fn a_decode_rate_counts_the_weights_and_kv_it_reads() {
        let m = model(32, 2, 4, 16, 40);
        let r = decode_rate(&m, 3, 20, 4).unwrap();
        assert!(r.iteration_s > 0.0 && r.gbytes_per_s() > 0.0);
        // 2 layers × (4·32² + 2·32·128 + biases and norms) + final norm + head + 3 rows of each table; and K, V of
        // the middle timed iteration: 3 sequences × 24 tokens (20 cached, the warm-up's, 2 timed before, its own).
        let weights = 2 * (4 * 32 * 32 + 2 * 32 * 128 + 4 * 32 + 128 + 32) + 2 * 32 + 32 * 16 + 2 * 3 * 32;
        let kv = 3 * 24 * 2 * 2 * 32;
        assert_eq!(r.bytes_read, ((weights + kv) * 4) as f64);
        let (batched, looped) = batched_and_looped_s(&m, 4, 10, 2).unwrap();
        assert!(batched > 0.0 && looped > 0.0);
    }

    /// The speed-up of batched attention over the per-sequence loop on this machine (recorded in
    /// docs/validation.md): `cargo test --release -p rlsim-exec speed_up -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn batched_decode_speed_up_over_the_per_sequence_loop() {
        let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
        println!("shape                      batch  context  batched ms  looped ms  speed-up  ({threads} threads)");
        // exec-tiny's model, and a mid size.
        for (name, d, layers, heads, vocab) in [("exec-tiny d64×2", 64, 2, 4, 32), ("mid d256×4", 256, 4, 8, 256)] {
            let m = model(d, layers, heads, vocab, 256);
            for (batch, context) in [(16, 28), (16, 128), (32, 28), (64, 28), (64, 128)] {
                let (b, l) = batched_and_looped_s(&m, batch, context, 15).unwrap();
                println!("{name:<25}  {batch:>5}  {context:>7}  {:>10.3}  {:>9.3}  {:>7.2}×", b * 1e3, l * 1e3, l / b);
            }
        }
    }
}
