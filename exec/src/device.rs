//! Devices the real backend runs on: `cpu`, or `cuda:N` when built with the `cuda` feature.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "cpu" {
            return Ok(DeviceSpec::Cpu);
        }
        if let Some(n) = s.strip_prefix("cuda:") {
            return n.parse().map(DeviceSpec::Cuda).map_err(|_| format!("bad device {s:?}: expected cpu or cuda:N"));
        }
        Err(format!("bad device {s:?}: expected cpu or cuda:N"))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// On the CPU the workers are the parallelism: each worker thread runs its own matmuls and element-wise ops, so
/// candle must not spread one op over extra threads (its shared pool would make concurrent workers contend and
/// makes tiny ops slower than running them inline). Sets `RAYON_NUM_THREADS=1` and `CANDLE_NUM_THREADS=1` unless
/// the user set them. Call it before any candle op runs — candle sizes its pool at the first one — ideally at the
/// start of `main`, before any thread exists.
pub fn one_thread_per_worker(device: DeviceSpec) {
    if device != DeviceSpec::Cpu {
        return;
    }
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
}

/// Runs `f` on a one-thread rayon pool of its own. Some candle and gemm code paths hand work to rayon; with one
/// global pool shared by every worker, that pool's thread became a point of contention between concurrent workers
/// (one of two concurrent rollout workers measured 2–5× slower per iteration, which one varying run to run).
/// A pool per worker keeps each worker's work on its own thread.
pub fn on_own_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

/// Whether this binary was built with the `cuda` feature.
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

impl DeviceSpec {
    /// Opens the candle device; without the `cuda` feature, asking for CUDA says how to build with it.
    pub fn open(&self) -> Result<candle_core::Device, String> {
        match self {
            DeviceSpec::Cpu => Ok(candle_core::Device::Cpu),
            DeviceSpec::Cuda(_) if !CUDA_BUILT => Err(format!(
                "{self}: this rlsim was built without CUDA support; build it with `cargo build --release --features cuda` \
                 (needs nvcc; see docs/cuda.md)"
            )),
            DeviceSpec::Cuda(n) => candle_core::Device::new_cuda(*n).map_err(|e| format!("{self}: cannot open: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_explains_missing_cuda() {
        assert_eq!("cpu".parse::<DeviceSpec>(), Ok(DeviceSpec::Cpu));
        assert_eq!("cuda:1".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(1)));
        assert!("gpu".parse::<DeviceSpec>().is_err());
        if !CUDA_BUILT {
            let e = DeviceSpec::Cuda(0).open().unwrap_err();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }
}
