//! A decoder-only transformer in candle (GPT-style: learned positions, pre-norm blocks, ReLU MLP), with a
//! full-sequence forward for training and prefill, and a batched one-token decode over a preallocated KV cache of
//! fixed slots (one per running sequence). Small shapes learn; named shapes (Qwen2.5-0.5B/1.5B dimensions) time.

use candle_core::{DType, Device, Tensor, Var};
use rand::RngExt;
use rlsim_sim::rng::StreamRng;

/// Shape of the real policy model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GptConfig {
    pub vocab: usize,
    pub d_model: usize,
    pub layers: usize,
    pub heads: usize,
    /// Width of the MLP's hidden layer (4 · d_model unless a named shape says otherwise).
    pub ffn: usize,
    /// Longest sequence (prompt + response) the position table covers.
    pub context: usize,
}

/// Dimensions of published models the real backend can build for timing (random weights, GPT-style blocks: see
/// `GptConfig::named`): (name, layers, hidden, heads, ffn, vocab), from each model's config.json.
pub const NAMED_SHAPES: &[(&str, usize, usize, usize, usize, usize)] =
    &[("Qwen2.5-0.5B", 24, 896, 14, 4864, 151_936), ("Qwen2.5-1.5B", 28, 1536, 12, 8960, 151_936)];

impl GptConfig {
    /// A named shape (case-insensitive) with `context` positions. Only the dimensions are the model's: the block
    /// stays this crate's GPT-style one (LayerNorm, ReLU MLP of the model's FFN width, learned positions, untied head,
    /// as many KV heads as query heads), so parameters and KV bytes per token are not Qwen's (see docs/cuda.md).
    pub fn named(name: &str, context: usize) -> Option<GptConfig> {
        NAMED_SHAPES
            .iter()
            .find(|s| s.0.eq_ignore_ascii_case(name))
            .map(|&(_, layers, d_model, heads, ffn, vocab)| GptConfig { vocab, d_model, layers, heads, ffn, context })
    }

    /// The MLP width for these dimensions: a named shape's when they are one, else 4 · hidden.
    pub fn ffn_for(layers: usize, hidden: usize, heads: usize, vocab: usize) -> usize {
        NAMED_SHAPES.iter().find(|s| (s.1, s.2, s.3, s.5) == (layers, hidden, heads, vocab)).map_or(4 * hidden, |s| s.4)
    }

    /// Parameters: embeddings, per layer (attention 4d², MLP 2·d·ffn + biases, two norms), final norm, LM head.
    pub fn parameter_count(&self) -> usize {
        let (d, f) = (self.d_model, self.ffn);
        self.vocab * d
            + self.context * d
            + self.layers * (4 * d + 3 * d * d + d * d + d * f + f + f * d + d)
            + 2 * d
            + d * self.vocab
    }

    fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }
}

/// The KV cache of a rollout engine, allocated once: per layer one K and one V tensor of shape
/// [slots, heads, context, head_dim]. Each running sequence owns a slot; the occupied slots are always 0..n (freeing
/// one moves the top slot into it), so a decode iteration attends over one contiguous block of slots with no gather.
pub struct KvCache {
    k: Vec<Tensor>,
    v: Vec<Tensor>,
    /// Tokens cached in each occupied slot (slot i holds `lens[i]`).
    lens: Vec<usize>,
    slots: usize,
    context: usize,
}

impl KvCache {
    /// Zeroed slots for `slots` sequences of up to `cfg.context` tokens on `device`.
    pub fn new(cfg: &GptConfig, slots: usize, device: &Device) -> candle_core::Result<KvCache> {
        let shape = (slots, cfg.heads, cfg.context, cfg.head_dim());
        let alloc = || Tensor::zeros(shape, DType::F32, device);
        Ok(KvCache {
            k: (0..cfg.layers).map(|_| alloc()).collect::<candle_core::Result<_>>()?,
            v: (0..cfg.layers).map(|_| alloc()).collect::<candle_core::Result<_>>()?,
            lens: Vec::with_capacity(slots),
            slots,
            context: cfg.context,
        })
    }

    /// Bytes `new` allocates (f32 K and V, every layer).
    pub fn bytes(cfg: &GptConfig, slots: usize) -> u64 {
        2 * cfg.layers as u64 * slots as u64 * cfg.context as u64 * cfg.d_model as u64 * 4
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Slots in use (they are 0..occupied).
    pub fn occupied(&self) -> usize {
        self.lens.len()
    }

    /// Tokens cached in `slot`.
    pub fn len(&self, slot: usize) -> usize {
        self.lens[slot]
    }

    /// Tokens cached in every occupied slot, by slot.
    pub fn lens(&self) -> &[usize] {
        &self.lens
    }

    /// Takes the next free slot, empty.
    pub fn claim(&mut self) -> candle_core::Result<usize> {
        if self.lens.len() == self.slots {
            candle_core::bail!("all {} KV-cache slots are taken", self.slots);
        }
        self.lens.push(0);
        Ok(self.lens.len() - 1)
    }

    /// Takes the next free slot and says it holds `len` tokens, whatever they are: for timing decode at a context
    /// without computing one (attention's cost does not depend on the values).
    pub fn claim_for_timing(&mut self, len: usize) -> candle_core::Result<usize> {
        if len >= self.context {
            candle_core::bail!("{len} cached tokens leave no room in a slot of {}", self.context);
        }
        let slot = self.claim()?;
        self.lens[slot] = len;
        Ok(slot)
    }

    /// Returns `slot`. When it was not the top one, the top slot's sequence moves into it: the answer is the slot it
    /// left, which its owner must now call `slot`.
    pub fn free(&mut self, slot: usize) -> candle_core::Result<Option<usize>> {
        let top = self.lens.len().checked_sub(1).filter(|&t| slot <= t);
        let Some(top) = top else { candle_core::bail!("KV-cache slot {slot} is not in use") };
        let moved = if slot != top {
            self.copy(top, slot, self.lens[top])?;
            self.lens[slot] = self.lens[top];
            Some(top)
        } else {
            None
        };
        self.lens.pop();
        Ok(moved)
    }

    /// Copies the first `n` cached tokens of slot `from` into slot `to` (prefix reuse by a sibling sequence).
    pub fn copy_prefix(&mut self, from: usize, to: usize, n: usize) -> candle_core::Result<()> {
        let n = n.min(self.lens[from]);
        self.copy(from, to, n)?;
        self.lens[to] = n;
        Ok(())
    }

    fn copy(&self, from: usize, to: usize, n: usize) -> candle_core::Result<()> {
        if n == 0 || from == to {
            return Ok(());
        }
        for t in self.k.iter().chain(&self.v) {
            // A copy of its own first: slice_set refuses a source sharing the destination's storage.
            let src = t.narrow(0, from, 1)?.narrow(2, 0, n)?.force_contiguous()?;
            t.narrow(0, to, 1)?.slice_set(&src, 2, 0)?;
        }
        Ok(())
    }
}

/// The KV cache of one sequence grown by concatenation, per layer keys and values of shape [heads, tokens,
/// head_dim]: the engine's cache before `KvCache`, kept as the reference the slots are checked and timed against.
#[derive(Clone, Debug)]
pub struct SeqCache {
    pub k: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Tokens cached.
    pub len: usize,
}

impl SeqCache {
    /// The first `n` cached positions (prefix reuse by a sibling with the same prompt).
    pub fn prefix(&self, n: usize) -> candle_core::Result<SeqCache> {
        let n = n.min(self.len);
        Ok(SeqCache {
            k: self.k.iter().map(|t| t.narrow(1, 0, n)).collect::<candle_core::Result<_>>()?,
            v: self.v.iter().map(|t| t.narrow(1, 0, n)).collect::<candle_core::Result<_>>()?,
            len: n,
        })
    }
}

/// Model weights as candle variables, in a fixed order (see `new`).
pub struct Gpt {
    pub cfg: GptConfig,
    pub vars: Vec<Var>,
    device: Device,
}

const PER_LAYER: usize = 10;

fn normal(rng: &mut StreamRng, n: usize, std: f32) -> Vec<f32> {
    // Box–Muller from the run's own stream, so initialisation is reproducible on every device.
    (0..n)
        .map(|_| {
            let u1: f32 = rng.random::<f32>().max(1e-7);
            let u2: f32 = rng.random();
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}

impl Gpt {
    /// A freshly initialised model: N(0, 0.02) matrices, unit norms, zero biases.
    pub fn new(cfg: GptConfig, rng: &mut StreamRng, device: &Device) -> candle_core::Result<Gpt> {
        let d = cfg.d_model;
        let mut shapes: Vec<(Vec<usize>, &str)> = vec![(vec![cfg.vocab, d], "n"), (vec![cfg.context, d], "n")];
        for _ in 0..cfg.layers {
            shapes.extend([
                (vec![d], "1"),
                (vec![d], "0"),
                (vec![d, 3 * d], "n"),
                (vec![d, d], "n"),
                (vec![d], "1"),
                (vec![d], "0"),
                (vec![d, cfg.ffn], "n"),
                (vec![cfg.ffn], "0"),
                (vec![cfg.ffn, d], "n"),
                (vec![d], "0"),
            ]);
        }
        shapes.extend([(vec![d], "1"), (vec![d], "0"), (vec![d, cfg.vocab], "n")]);
        let mut vars = Vec::with_capacity(shapes.len());
        for (shape, init) in shapes {
            let n: usize = shape.iter().product();
            let data = match init {
                "n" => normal(rng, n, 0.02),
                "1" => vec![1.0; n],
                _ => vec![0.0; n],
            };
            vars.push(Var::from_tensor(&Tensor::from_vec(data, shape, device)?)?);
        }
        Ok(Gpt { cfg, vars, device: device.clone() })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Deep copies of the weights (what a weight sync sends).
    pub fn snapshot(&self) -> candle_core::Result<Vec<Tensor>> {
        self.vars.iter().map(|v| v.as_tensor().copy()).collect()
    }

    /// Overwrites the weights with `tensors` (same order and shapes), moving them to this model's device. Returns
    /// when the copies are done: `tensors` are often shared with other threads (a weight snapshot every engine
    /// loads), and on a GPU the last holder frees them on its own stream, which does not wait for this thread's.
    pub fn load(&self, tensors: &[Tensor]) -> candle_core::Result<()> {
        if tensors.len() != self.vars.len() {
            candle_core::bail!("weight count mismatch: {} vs {}", tensors.len(), self.vars.len());
        }
        for (v, t) in self.vars.iter().zip(tensors) {
            v.set(&t.to_device(&self.device)?)?;
        }
        self.device.synchronize()
    }

    /// Frees the weights on the device (a time-sliced worker's engine while it trains): every variable becomes an
    /// empty placeholder until [`Gpt::restore`]. The model must not run meanwhile.
    pub fn release_weights(&mut self) -> candle_core::Result<()> {
        let empty = Tensor::zeros(0, candle_core::DType::F32, &self.device)?;
        self.vars = (0..self.vars.len()).map(|_| Var::from_tensor(&empty)).collect::<candle_core::Result<_>>()?;
        Ok(())
    }

    /// Whether the weights were released (see [`Gpt::release_weights`]).
    pub fn is_released(&self) -> bool {
        self.vars.first().is_some_and(|v| v.as_tensor().elem_count() == 0)
    }

    /// Allocates the weights again on the device from `tensors` (same order and shapes as the model's).
    pub fn restore(&mut self, tensors: &[Tensor]) -> candle_core::Result<()> {
        if tensors.len() != self.vars.len() {
            candle_core::bail!("weight count mismatch: {} vs {}", tensors.len(), self.vars.len());
        }
        // `Var::from_tensor` copies into the variable's own storage; done before returning, as in `load`.
        self.vars = tensors
            .iter()
            .map(|t| Var::from_tensor(&t.to_device(&self.device)?))
            .collect::<candle_core::Result<_>>()?;
        self.device.synchronize()
    }

    fn p(&self, i: usize) -> &Tensor {
        self.vars[i].as_tensor()
    }

    fn layer(&self, l: usize, i: usize) -> &Tensor {
        self.p(2 + l * PER_LAYER + i)
    }

    fn final_norm(&self) -> (&Tensor, &Tensor, &Tensor) {
        let base = 2 + self.cfg.layers * PER_LAYER;
        (self.p(base), self.p(base + 1), self.p(base + 2))
    }

    fn mlp(&self, l: usize, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = candle_nn::ops::layer_norm_slow(x, self.layer(l, 4), self.layer(l, 5), 1e-5)?;
        let h = h.broadcast_matmul(self.layer(l, 6))?.broadcast_add(self.layer(l, 7))?.relu()?;
        h.broadcast_matmul(self.layer(l, 8))?.broadcast_add(self.layer(l, 9))
    }

    /// Logits [B, T, vocab] for token ids [B, T] (causal). With `keep_kv`, also each layer's keys and values
    /// [B, heads, T, head_dim].
    pub fn forward(&self, tokens: &Tensor, keep_kv: bool) -> candle_core::Result<(Tensor, Vec<(Tensor, Tensor)>)> {
        let (b, t) = tokens.dims2()?;
        let (d, h, dh) = (self.cfg.d_model, self.cfg.heads, self.cfg.head_dim());
        let pos = self.p(1).narrow(0, 0, t)?;
        let mut x = self.p(0).index_select(&tokens.flatten_all()?, 0)?.reshape((b, t, d))?.broadcast_add(&pos)?;
        let mask: Vec<f32> =
            (0..t).flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 })).collect();
        let mask = Tensor::from_vec(mask, (t, t), &self.device)?;
        let scale = 1.0 / (dh as f64).sqrt();
        let mut kv = Vec::new();
        for l in 0..self.cfg.layers {
            let hn = candle_nn::ops::layer_norm_slow(&x, self.layer(l, 0), self.layer(l, 1), 1e-5)?;
            let qkv = hn.broadcast_matmul(self.layer(l, 2))?;
            let split = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(2, i * d, d)?.reshape((b, t, h, dh))?.transpose(1, 2)?.contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?.matmul(&v)?;
            let att = att.transpose(1, 2)?.reshape((b, t, d))?.broadcast_matmul(self.layer(l, 3))?;
            x = (x + att)?;
            x = (&x + self.mlp(l, &x)?)?;
            if keep_kv {
                kv.push((k, v));
            }
        }
        let (g, bn, head) = self.final_norm();
        let x = candle_nn::ops::layer_norm_slow(&x, g, bn, 1e-5)?;
        Ok((x.broadcast_matmul(head)?, kv))
    }

    /// Caches the KV of `context` (all but the token the next decode step will read) in `slot`, from position 0.
    pub fn prefill(&self, cache: &mut KvCache, slot: usize, context: &[u32]) -> candle_core::Result<()> {
        if context.len() >= cache.context {
            candle_core::bail!("a context of {} tokens leaves no room in a slot of {}", context.len(), cache.context);
        }
        if !context.is_empty() {
            let tokens = Tensor::from_slice(context, (1, context.len()), &self.device)?;
            let (_, kv) = self.forward(&tokens, true)?;
            for (l, (k, v)) in kv.iter().enumerate() {
                cache.k[l].narrow(0, slot, 1)?.slice_set(k, 2, 0)?;
                cache.v[l].narrow(0, slot, 1)?.slice_set(v, 2, 0)?;
            }
        }
        cache.lens[slot] = context.len();
        Ok(())
    }

    /// One decode iteration of every occupied slot: slot i reads its last token `last[i]` at its position, writes
    /// that token's keys and values into the slot in place (one scatter per layer for the whole batch), and gets
    /// next-token logits (row i of [n, vocab]). Attention is one batched matmul over the slots' first `longest + 1`
    /// positions with a mask past each sequence's own length, so its cost follows n × the longest context.
    pub fn decode(&self, last: &[u32], cache: &mut KvCache) -> candle_core::Result<Tensor> {
        let n = cache.occupied();
        if last.len() != n || n == 0 {
            candle_core::bail!("decode of {} tokens for {n} occupied KV-cache slots", last.len());
        }
        let (d, h, dh) = (self.cfg.d_model, self.cfg.heads, self.cfg.head_dim());
        let longest = *cache.lens.iter().max().expect("n > 0");
        if longest + 1 > cache.context {
            candle_core::bail!("a sequence outgrew its KV-cache slot of {} tokens", cache.context);
        }
        let span = longest + 1;
        let positions: Vec<u32> = cache.lens.iter().map(|&l| l as u32).collect();
        let tok = Tensor::from_slice(last, n, &self.device)?;
        let pos = Tensor::from_slice(&positions, n, &self.device)?;
        let mut x = (self.p(0).index_select(&tok, 0)? + self.p(1).index_select(&pos, 0)?)?.reshape((n, 1, d))?;
        // Where each slot's new token goes along the position axis (scatter wants an index per element written).
        let at =
            Tensor::from_slice(&positions, (n, 1, 1, 1), &self.device)?.broadcast_as((n, h, 1, dh))?.contiguous()?;
        let mask: Vec<f32> = cache
            .lens
            .iter()
            .flat_map(|&len| (0..span).map(move |j| if j > len { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (n, 1, 1, span), &self.device)?;
        let scale = 1.0 / (dh as f64).sqrt();
        for l in 0..self.cfg.layers {
            let hn = candle_nn::ops::layer_norm_slow(&x, self.layer(l, 0), self.layer(l, 1), 1e-5)?;
            let qkv = hn.broadcast_matmul(self.layer(l, 2))?;
            let split = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(2, i * d, d)?.reshape((n, 1, h, dh))?.transpose(1, 2)?.contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let (kc, vc) = (cache.k[l].narrow(0, 0, n)?, cache.v[l].narrow(0, 0, n)?);
            kc.scatter_set(&at, &k, 2)?;
            vc.scatter_set(&at, &v, 2)?;
            // Strided views of the slots: the matmuls read them in place (batch stride = one head's positions).
            let att = (q.matmul(&kc.narrow(2, 0, span)?.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?.matmul(&vc.narrow(2, 0, span)?)?;
            let att = att.transpose(1, 2)?.reshape((n, 1, d))?.broadcast_matmul(self.layer(l, 3))?;
            x = (x + att)?;
            x = (&x + self.mlp(l, &x)?)?;
        }
        cache.lens.iter_mut().for_each(|l| *l += 1);
        let (g, bn, head) = self.final_norm();
        let x = candle_nn::ops::layer_norm_slow(&x, g, bn, 1e-5)?;
        x.broadcast_matmul(head)?.reshape((n, self.cfg.vocab))
    }

    /// The reference prefill into a `SeqCache` (see `prefill` for the slots).
    pub fn prefill_sequence(&self, context: &[u32]) -> candle_core::Result<SeqCache> {
        let (h, dh) = (self.cfg.heads, self.cfg.head_dim());
        if context.is_empty() {
            let empty = Tensor::zeros((h, 0, dh), DType::F32, &self.device)?;
            return Ok(SeqCache { k: vec![empty.clone(); self.cfg.layers], v: vec![empty; self.cfg.layers], len: 0 });
        }
        let tokens = Tensor::from_slice(context, (1, context.len()), &self.device)?;
        let (_, kv) = self.forward(&tokens, true)?;
        let mut k = Vec::new();
        let mut v = Vec::new();
        for (kl, vl) in kv {
            k.push(kl.squeeze(0)?);
            v.push(vl.squeeze(0)?);
        }
        Ok(SeqCache { k, v, len: context.len() })
    }

    /// The reference decode (the engine's until the slots): like `decode`, but attention runs per sequence over its
    /// own cache, grown by a `cat` per token and layer.
    pub fn decode_per_sequence(&self, last: &[u32], caches: &mut [SeqCache]) -> candle_core::Result<Tensor> {
        let b = last.len();
        let (d, h, dh) = (self.cfg.d_model, self.cfg.heads, self.cfg.head_dim());
        let positions: Vec<u32> = caches.iter().map(|c| c.len as u32).collect();
        let tok = Tensor::from_slice(last, b, &self.device)?;
        let pos = Tensor::from_vec(positions, b, &self.device)?;
        let mut x = (self.p(0).index_select(&tok, 0)? + self.p(1).index_select(&pos, 0)?)?.reshape((b, 1, d))?;
        let scale = 1.0 / (dh as f64).sqrt();
        for l in 0..self.cfg.layers {
            let hn = candle_nn::ops::layer_norm_slow(&x, self.layer(l, 0), self.layer(l, 1), 1e-5)?;
            let qkv = hn.broadcast_matmul(self.layer(l, 2))?;
            let split = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(2, i * d, d)?.reshape((b, 1, h, dh))?.transpose(1, 2)?.contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let mut outs = Vec::with_capacity(b);
            for (i, c) in caches.iter_mut().enumerate() {
                c.k[l] = Tensor::cat(&[&c.k[l], &k.get(i)?], 1)?;
                c.v[l] = Tensor::cat(&[&c.v[l], &v.get(i)?], 1)?;
                let att = (q.get(i)?.matmul(&c.k[l].t()?)? * scale)?;
                outs.push(candle_nn::ops::softmax_last_dim(&att)?.matmul(&c.v[l])?);
            }
            let att =
                Tensor::stack(&outs, 0)?.transpose(1, 2)?.reshape((b, 1, d))?.broadcast_matmul(self.layer(l, 3))?;
            x = (x + att)?;
            x = (&x + self.mlp(l, &x)?)?;
        }
        for c in caches.iter_mut() {
            c.len += 1;
        }
        let (g, bn, head) = self.final_norm();
        let x = candle_nn::ops::layer_norm_slow(&x, g, bn, 1e-5)?;
        x.broadcast_matmul(head)?.reshape((b, self.cfg.vocab))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rlsim_sim::rng::RngStreams;

    fn tiny() -> Gpt {
        let cfg = GptConfig { vocab: 16, d_model: 32, layers: 2, heads: 4, ffn: 128, context: 32 };
        Gpt::new(cfg, &mut RngStreams::new(1).stream("init"), &Device::Cpu).unwrap()
    }

    /// Next-token logits after each prefix of `seq`, from the full causal forward.
    fn full(m: &Gpt, seq: &[u32]) -> Vec<Vec<f32>> {
        let (logits, _) = m.forward(&Tensor::from_slice(seq, (1, seq.len()), &Device::Cpu).unwrap(), false).unwrap();
        logits.get(0).unwrap().to_vec2().unwrap()
    }

    fn assert_close(want: &[f32], got: &[f32]) {
        assert_eq!(want.len(), got.len());
        for (a, b) in want.iter().zip(got) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn cached_decode_matches_the_full_forward() {
        let m = tiny();
        let seq: Vec<u32> = vec![3, 7, 1, 9, 4, 2, 8, 5];
        let want = full(&m, &seq);
        // Three sequences of different lengths decoded together, twice (the mask must hide each slot's unwritten
        // positions and the other sequences' longer contexts).
        let mut cache = KvCache::new(&m.cfg, 4, &Device::Cpu).unwrap();
        let starts = [5usize, 2, 0];
        for &s in &starts {
            let slot = cache.claim().unwrap();
            m.prefill(&mut cache, slot, &seq[..s]).unwrap();
        }
        for step in 0..2 {
            let last: Vec<u32> = starts.iter().map(|&s| seq[s + step]).collect();
            let logits: Vec<Vec<f32>> = m.decode(&last, &mut cache).unwrap().to_vec2().unwrap();
            for (i, &s) in starts.iter().enumerate() {
                assert_close(&want[s + step], &logits[i]);
            }
        }
        assert_eq!(cache.lens(), &[7, 4, 2]);
        // The reference path (per-sequence caches grown by cat) agrees, and so does its prefix reuse.
        let mut caches = vec![m.prefill_sequence(&seq[..5]).unwrap(), m.prefill_sequence(&seq[..2]).unwrap()];
        let logits = m.decode_per_sequence(&[seq[5], seq[2]], &mut caches).unwrap();
        assert_close(&want[5], &logits.get(0).unwrap().to_vec1::<f32>().unwrap());
        assert_close(&want[2], &logits.get(1).unwrap().to_vec1::<f32>().unwrap());
        let p = caches[0].prefix(2).unwrap();
        let fresh = m.prefill_sequence(&seq[..2]).unwrap();
        let diff = (p.k[1].clone() - fresh.k[1].clone()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }

    #[test]
    fn a_freed_slot_is_reused_and_prefix_copies_match_a_prefill() {
        let m = tiny();
        let (a, b): (Vec<u32>, Vec<u32>) = (vec![3, 7, 1, 9, 4, 2, 8, 5], vec![6, 6, 2, 11, 13, 0, 1, 7]);
        let (want_a, want_b) = (full(&m, &a), full(&m, &b));
        let mut cache = KvCache::new(&m.cfg, 2, &Device::Cpu).unwrap();
        let (s0, s1) = (cache.claim().unwrap(), cache.claim().unwrap());
        m.prefill(&mut cache, s0, &b[..3]).unwrap();
        m.prefill(&mut cache, s1, &a[..4]).unwrap();
        assert!(cache.claim().is_err(), "two slots only");
        m.decode(&[b[3], a[4]], &mut cache).unwrap();
        // b leaves from slot 0: a's slot moves down into it, and its cache with it.
        assert_eq!(cache.free(s0).unwrap(), Some(1));
        assert_eq!(cache.lens(), &[5]);
        // A newcomer takes the freed slot, as a sibling of a: its prompt's cache is copied, not recomputed.
        let s = cache.claim().unwrap();
        assert_eq!(s, 1);
        cache.copy_prefix(0, s, 3).unwrap();
        let logits: Vec<Vec<f32>> = m.decode(&[a[5], a[3]], &mut cache).unwrap().to_vec2().unwrap();
        assert_close(&want_a[5], &logits[0]);
        assert_close(&want_a[3], &logits[1]);
        // A stranger in a slot that held longer sequences: stale keys past its length stay masked.
        assert_eq!(cache.free(0).unwrap(), Some(1));
        assert_eq!(cache.free(0).unwrap(), None);
        let s = cache.claim().unwrap();
        m.prefill(&mut cache, s, &b[..1]).unwrap();
        let logits: Vec<Vec<f32>> = m.decode(&[b[1]], &mut cache).unwrap().to_vec2().unwrap();
        assert_close(&want_b[1], &logits[0]);
        assert!(cache.free(3).is_err());
    }

    #[test]
    fn snapshot_and_load_copy_weights() {
        let (a, b) = (tiny(), Gpt::new(tiny().cfg, &mut RngStreams::new(2).stream("init"), &Device::Cpu).unwrap());
        b.load(&a.snapshot().unwrap()).unwrap();
        let t = Tensor::from_slice(&[1u32, 2, 3], (1, 3), &Device::Cpu).unwrap();
        let (la, _) = a.forward(&t, false).unwrap();
        let (lb, _) = b.forward(&t, false).unwrap();
        assert_eq!(
            la.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            lb.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert!(a.cfg.parameter_count() > 0);
    }

    #[test]
    fn released_weights_leave_nothing_and_come_back_the_same() {
        let mut m = tiny();
        let t = Tensor::from_slice(&[1u32, 2, 3], (1, 3), &Device::Cpu).unwrap();
        let before = m.forward(&t, false).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let host = m.snapshot().unwrap();
        m.release_weights().unwrap();
        assert!(m.is_released());
        assert!(m.vars.iter().all(|v| v.as_tensor().elem_count() == 0));
        assert!(m.restore(&host[1..]).is_err(), "a wrong weight count is refused");
        m.restore(&host).unwrap();
        assert!(!m.is_released());
        let after = m.forward(&t, false).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(before, after);
    }
}
