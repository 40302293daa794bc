//! A small decoder-only transformer in candle (GPT-style: learned positions, pre-norm blocks, ReLU MLP), with a
//! full-sequence forward for training and prefill and a batched one-token decode over per-sequence KV caches.

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
    /// Longest sequence (prompt + response) the position table covers.
    pub context: usize,
}

impl GptConfig {
    /// Parameters: embeddings, per layer (attention 4d², MLP 8d² + biases, two norms), final norm, LM head.
    pub fn parameter_count(&self) -> usize {
        let d = self.d_model;
        self.vocab * d
            + self.context * d
            + self.layers * (4 * d + 3 * d * d + d * d + 4 * d * d + 4 * d + 4 * d * d + d)
            + 2 * d
            + d * self.vocab
    }

    fn head_dim(&self) -> usize {
        self.d_model / self.heads
    }
}

/// The KV cache of one sequence: per layer, keys and values of shape [heads, tokens, head_dim].
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
                (vec![d, 4 * d], "n"),
                (vec![4 * d], "0"),
                (vec![4 * d, d], "n"),
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

    /// Overwrites the weights with `tensors` (same order and shapes), moving them to this model's device.
    pub fn load(&self, tensors: &[Tensor]) -> candle_core::Result<()> {
        if tensors.len() != self.vars.len() {
            candle_core::bail!("weight count mismatch: {} vs {}", tensors.len(), self.vars.len());
        }
        for (v, t) in self.vars.iter().zip(tensors) {
            v.set(&t.to_device(&self.device)?)?;
        }
        Ok(())
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

    /// Caches the KV of `context` (all but the token the next decode step will read). Empty context → empty cache.
    pub fn prefill(&self, context: &[u32]) -> candle_core::Result<SeqCache> {
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

    /// One decode iteration for a batch: each sequence reads its last token at its position, appends that token's
    /// keys and values to its cache, and gets next-token logits [B, vocab]. The matmuls of the weights are batched;
    /// attention runs per sequence over its own cache (no padding), so its cost follows the sum of the contexts.
    pub fn decode(&self, last: &[u32], caches: &mut [SeqCache]) -> candle_core::Result<Tensor> {
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
        let cfg = GptConfig { vocab: 16, d_model: 32, layers: 2, heads: 4, context: 32 };
        Gpt::new(cfg, &mut RngStreams::new(1).stream("init"), &Device::Cpu).unwrap()
    }

    #[test]
    fn cached_decode_matches_the_full_forward() {
        let m = tiny();
        let seq: Vec<u32> = vec![3, 7, 1, 9, 4, 2];
        let (full, _) = m.forward(&Tensor::from_slice(&seq, (1, seq.len()), &Device::Cpu).unwrap(), false).unwrap();
        let want: Vec<f32> = full.get(0).unwrap().get(5).unwrap().to_vec1().unwrap();
        // Two sequences of different lengths decoded together (padding must not leak into either).
        let mut caches = vec![m.prefill(&seq[..5]).unwrap(), m.prefill(&seq[..2]).unwrap()];
        let logits = m.decode(&[seq[5], seq[2]], &mut caches).unwrap();
        let got: Vec<f32> = logits.get(0).unwrap().to_vec1().unwrap();
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let want2: Vec<f32> = full.get(0).unwrap().get(2).unwrap().to_vec1().unwrap();
        let got2: Vec<f32> = logits.get(1).unwrap().to_vec1().unwrap();
        for (a, b) in want2.iter().zip(&got2) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        assert_eq!((caches[0].len, caches[1].len), (6, 3));
        // Prefix reuse gives the same cache as recomputing.
        let p = caches[0].prefix(2).unwrap();
        let fresh = m.prefill(&seq[..2]).unwrap();
        let diff = (p.k[1].clone() - fresh.k[1].clone()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
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
}
