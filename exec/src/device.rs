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

/// What `--device` asks for: the CPU, every visible GPU, or a list of GPUs (repeats share a GPU between workers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    Cpu,
    /// `cuda`: one worker per visible GPU.
    AllCuda,
    /// `cuda:N` (every worker on GPU N) or `cuda:A,B,...` (worker i on the i-th listed GPU, cycling).
    Cuda(Vec<usize>),
}

impl DeviceChoice {
    /// The device a single-device measurement (`profile`, `validate`'s profiling) uses: the first one asked for.
    pub fn first(&self) -> DeviceSpec {
        match self {
            DeviceChoice::Cpu => DeviceSpec::Cpu,
            DeviceChoice::AllCuda => DeviceSpec::Cuda(0),
            DeviceChoice::Cuda(ids) => DeviceSpec::Cuda(ids[0]),
        }
    }
}

impl From<DeviceSpec> for DeviceChoice {
    fn from(d: DeviceSpec) -> Self {
        match d {
            DeviceSpec::Cpu => DeviceChoice::Cpu,
            DeviceSpec::Cuda(n) => DeviceChoice::Cuda(vec![n]),
        }
    }
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad device {s:?}: expected cpu, cuda (every visible GPU), cuda:N or cuda:N,M,...");
        match s {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::AllCuda),
            _ => {
                let list = s.strip_prefix("cuda:").ok_or_else(bad)?;
                let ids = list.split(',').map(|n| n.trim().parse::<usize>()).collect::<Result<Vec<_>, _>>();
                ids.ok().filter(|v| !v.is_empty()).map(DeviceChoice::Cuda).ok_or_else(bad)
            }
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::AllCuda => f.write_str("cuda"),
            DeviceChoice::Cuda(ids) => {
                write!(f, "cuda:{}", ids.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(","))
            }
        }
    }
}

/// GPUs the CUDA driver reports (cudarc); an error says why there are none to count.
pub fn cuda_device_count() -> Result<usize, String> {
    #[cfg(feature = "cuda")]
    {
        use candle_core::cuda_backend::cudarc::driver::CudaContext;
        CudaContext::device_count().map(|n| n.max(0) as usize).map_err(|e| format!("cannot count CUDA devices: {e}"))
    }
    #[cfg(not(feature = "cuda"))]
    {
        Err("this rlsim was built without CUDA support; build it with `cargo build --release --features cuda` \
             (needs nvcc; see docs/cuda.md)"
            .into())
    }
}

/// Where each of `workers` workers runs. The CPU hosts every worker (a thread each). GPUs get one worker each
/// unless the user listed a GPU for several (`cuda:0` for all, or repeats): that is reported as shared. `visible`
/// counts the GPUs for `cuda`.
pub fn assign_devices(
    choice: &DeviceChoice,
    workers: usize,
    visible: impl FnOnce() -> Result<usize, String>,
) -> Result<(Vec<DeviceSpec>, bool), String> {
    let ids: Vec<usize> = match choice {
        DeviceChoice::Cpu => return Ok((vec![DeviceSpec::Cpu; workers], false)),
        DeviceChoice::AllCuda => {
            let n = visible()?;
            if n < workers {
                return Err(format!(
                    "--device cuda: the scenario has {workers} workers but {n} GPU(s) are visible; one worker per GPU \
                     needs as many GPUs; to share, list them (e.g. cuda:0 for all on one, or cuda:0,0,1,1)"
                ));
            }
            (0..workers).collect()
        }
        DeviceChoice::Cuda(list) if list.len() == 1 => vec![list[0]; workers],
        DeviceChoice::Cuda(list) => {
            if list.len() != workers {
                return Err(format!(
                    "--device {choice}: {} GPUs listed for {workers} workers; list one per worker (repeats share a GPU)",
                    list.len()
                ));
            }
            list.clone()
        }
    };
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    let shared = sorted.windows(2).any(|w| w[0] == w[1]);
    Ok((ids.into_iter().map(DeviceSpec::Cuda).collect(), shared))
}

/// Waits for the calling thread's GPU work before `tensors` it computed go to another thread. candle's CUDA device
/// launches each thread's work on that thread's own stream (`CU_STREAM_PER_THREAD`), and one stream does not wait
/// for another's: a rank's gradients, an all-reduce's sum or a trainer's weight snapshot read on another thread
/// without this could still be being written. Nothing to do on the CPU, where candle computes eagerly.
pub fn settle(tensors: &[candle_core::Tensor]) -> candle_core::Result<()> {
    match tensors.first() {
        Some(t) if !t.device().is_cpu() => t.device().synchronize(),
        _ => Ok(()),
    }
}

/// Waits until `t` is computed, before a timing is read. On a GPU: the calling thread's stream synchronised
/// (candle's CUDA `sum_all` runs on one thread block, 42 GB/s on an H200, so reading back a sum of a large tensor,
/// e.g. the LM head after an update, cost more than the work timed). On the CPU, where candle computes eagerly, a
/// sum of it read back, as every CPU timing of the project was measured.
pub fn wait_for(t: &candle_core::Tensor) -> candle_core::Result<()> {
    if t.device().is_cpu() {
        t.sum_all()?.to_scalar::<f32>().map(|_| ())
    } else {
        t.device().synchronize()
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
    fn workers_are_spread_one_per_gpu_and_shared_only_when_listed() {
        let four = || Ok(4);
        let parse = |s: &str| s.parse::<DeviceChoice>().unwrap();
        assert_eq!(assign_devices(&parse("cpu"), 2, four), Ok((vec![DeviceSpec::Cpu; 2], false)));
        assert_eq!(
            assign_devices(&parse("cuda"), 3, four),
            Ok((vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(1), DeviceSpec::Cuda(2)], false))
        );
        let e = assign_devices(&parse("cuda"), 5, four).unwrap_err();
        assert!(e.contains("5 workers but 4 GPU(s)") && e.contains("cuda:0,0,1,1"), "{e}");
        assert_eq!(assign_devices(&parse("cuda:1"), 2, four), Ok((vec![DeviceSpec::Cuda(1); 2], true)));
        assert_eq!(assign_devices(&parse("cuda:1"), 1, four), Ok((vec![DeviceSpec::Cuda(1)], false)));
        assert_eq!(
            assign_devices(&parse("cuda:0,0,1"), 3, four),
            Ok((vec![DeviceSpec::Cuda(0), DeviceSpec::Cuda(0), DeviceSpec::Cuda(1)], true))
        );
        assert!(assign_devices(&parse("cuda:0,1"), 3, four).unwrap_err().contains("2 GPUs listed for 3 workers"));
        assert_eq!(parse("cuda:2,3").to_string(), "cuda:2,3");
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:1,", "cuda0"] {
            assert!(bad.parse::<DeviceChoice>().is_err(), "{bad}");
        }
        if !CUDA_BUILT {
            assert!(cuda_device_count().unwrap_err().contains("--features cuda"));
        }
    }

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
