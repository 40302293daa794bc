//! `[cluster]`: the GPU's figures, nodes, explicit or automatic workers, and the layout's tags.

use crate::cluster::{Cluster, PlacementError, WorkerGroupSpec};
use crate::cost::Role;
use crate::hardware::{gpu_preset, GpuSpec, GPU_ALIASES, GPU_PRESETS};
use crate::scenario::check::{Check, BANDWIDTH, HBM, MAX_MEMORY_GB, MAX_PRICE, TFLOPS};
use crate::scenario::{
    Layout, PipelineKind, PipelineSpec, RawCluster, RawScenario, RawWorkerGroup, RolloutSpec, ScenarioError,
};

/// Most GPUs a cluster may have, and per node (an NVLink domain: GB200 NVL72 has 72).
pub(super) const MAX_GPUS: u32 = 1 << 20;
pub(super) const MAX_GPUS_PER_NODE: u32 = 1024;

/// The cluster's shape: the GPU, nodes and GPUs per node.
pub(super) struct Shape {
    pub gpu: GpuSpec,
    pub nodes: u32,
    pub gpus_per_node: u32,
}

/// The GPU's figures and the node counts; fills in `resolved.cluster`.
pub(super) fn validate_shape(raw: &RawCluster, c: &Check, resolved: &mut RawScenario) -> Result<Shape, ScenarioError> {
    let gpu = validate_gpu(raw, c)?;
    let nodes = c.count_max(raw.nodes, "cluster.nodes", None, MAX_GPUS, "number of nodes")?;
    let gpus_per_node =
        c.count_max(raw.gpus_per_node, "cluster.gpus_per_node", Some(8), MAX_GPUS_PER_NODE, "GPUs per node")?;
    if nodes as u64 * gpus_per_node as u64 > MAX_GPUS as u64 {
        return Err(c.src.error(
            "cluster.nodes",
            format!(
                "{nodes} nodes × {gpus_per_node} GPUs is {} GPUs; at most {MAX_GPUS} are simulated",
                nodes as u64 * gpus_per_node as u64
            ),
        ));
    }
    resolved.cluster = RawCluster {
        gpu: raw.gpu.as_ref().map(|_| gpu.name.clone()),
        bf16_tflops: Some(gpu.bf16_tflops),
        matmul_efficiency: Some(gpu.matmul_efficiency),
        hbm_gbytes_per_s: Some(gpu.hbm_gbytes_per_s),
        hbm_efficiency_vs_h100: Some(gpu.hbm_efficiency_vs_h100),
        layer_floor_vs_h100: Some(gpu.layer_floor_vs_h100),
        train_efficiency_vs_h100: Some(gpu.train_efficiency_vs_h100),
        memory_gb: Some(gpu.memory_gb),
        nvlink_gbytes_per_s: Some(gpu.nvlink_gbytes_per_s),
        pcie_gbytes_per_s: Some(gpu.pcie_gbytes_per_s),
        network_gbits_per_s: Some(gpu.network_gbits_per_s),
        price_per_gpu_hour: Some(gpu.price_per_gpu_hour),
        nodes: Some(nodes),
        gpus_per_node: Some(gpus_per_node),
        workers: raw.workers.clone(),
    };
    Ok(Shape { gpu, nodes, gpus_per_node })
}

fn validate_gpu(cl: &RawCluster, c: &Check) -> Result<GpuSpec, ScenarioError> {
    let base = match &cl.gpu {
        Some(g) => Some(gpu_preset(g).ok_or_else(|| {
            c.src.error(
                "cluster.gpu",
                format!("unknown GPU preset {g:?}; expected one of {} (or give explicit fields)", gpu_names()),
            )
        })?),
        None => None,
    };
    let b = base.as_ref();
    // A figure from the file or the preset, within physical bounds.
    let figure = |v: Option<f64>, field: &str, (lo, hi): (f64, f64), what: &str| {
        let v = c.require(v, field, "a positive number (a preset (cluster.gpu) or this field)")?;
        c.range(Some(v), field, None, lo, hi, what)
    };
    Ok(GpuSpec {
        name: b.map(|b| b.name.clone()).unwrap_or_else(|| "custom".into()),
        bf16_tflops: figure(
            cl.bf16_tflops.or(b.map(|b| b.bf16_tflops)),
            "cluster.bf16_tflops",
            TFLOPS,
            "dense bf16 TFLOP/s",
        )?,
        matmul_efficiency: {
            let v = c.require(
                cl.matmul_efficiency.or(b.map(|b| b.matmul_efficiency)),
                "cluster.matmul_efficiency",
                "the measured largest bf16 matmul rate as a share of bf16_tflops (a preset (cluster.gpu) or this \
                 field; 1 when bf16_tflops is itself a measured rate)",
            )?;
            c.range(Some(v), "cluster.matmul_efficiency", None, 0.01, 1.0, "a share of bf16_tflops")?
        },
        hbm_gbytes_per_s: figure(
            cl.hbm_gbytes_per_s.or(b.map(|b| b.hbm_gbytes_per_s)),
            "cluster.hbm_gbytes_per_s",
            HBM,
            "HBM GB/s",
        )?,
        hbm_efficiency_vs_h100: c.number(
            cl.hbm_efficiency_vs_h100.or(b.map(|b| b.hbm_efficiency_vs_h100)),
            "cluster.hbm_efficiency_vs_h100",
            1.0,
            0.1,
            2.0,
            "the share of HBM bandwidth reached relative to an H100's",
        )?,
        layer_floor_vs_h100: c.number(
            cl.layer_floor_vs_h100.or(b.map(|b| b.layer_floor_vs_h100)),
            "cluster.layer_floor_vs_h100",
            1.0,
            0.1,
            10.0,
            "a decode layer's fixed cost relative to an H100's",
        )?,
        train_efficiency_vs_h100: c.number(
            cl.train_efficiency_vs_h100.or(b.map(|b| b.train_efficiency_vs_h100)),
            "cluster.train_efficiency_vs_h100",
            1.0,
            0.1,
            2.0,
            "a trainer's share of the achievable matmul rate relative to an H100's",
        )?,
        // Any positive size: tiny devices are how tests force KV-cache pressure; the memory checks say what fits.
        memory_gb: {
            let v = c.require(
                cl.memory_gb.or(b.map(|b| b.memory_gb)),
                "cluster.memory_gb",
                "a positive number (a preset (cluster.gpu) or this field)",
            )?;
            c.positive(Some(v), "cluster.memory_gb", None, MAX_MEMORY_GB, "GB of memory")?
        },
        nvlink_gbytes_per_s: figure(
            cl.nvlink_gbytes_per_s.or(b.map(|b| b.nvlink_gbytes_per_s)),
            "cluster.nvlink_gbytes_per_s",
            BANDWIDTH,
            "NVLink GB/s",
        )?,
        pcie_gbytes_per_s: figure(
            cl.pcie_gbytes_per_s.or(b.map(|b| b.pcie_gbytes_per_s)),
            "cluster.pcie_gbytes_per_s",
            BANDWIDTH,
            "PCIe GB/s",
        )?,
        network_gbits_per_s: figure(
            cl.network_gbits_per_s.or(b.map(|b| b.network_gbits_per_s)),
            "cluster.network_gbits_per_s",
            BANDWIDTH,
            "network Gbit/s",
        )?,
        price_per_gpu_hour: c.number(
            cl.price_per_gpu_hour.or(b.map(|b| b.price_per_gpu_hour)),
            "cluster.price_per_gpu_hour",
            0.0,
            0.0,
            MAX_PRICE,
            "US dollars per GPU-hour",
        )?,
    })
}

/// The worker groups: the explicit `[[cluster.workers]]`, or the pipeline's automatic layout (which records the
/// rollout GPUs it chose in `pipeline`).
pub(super) fn worker_groups(
    raw: &RawScenario,
    shape: &Shape,
    rollout: &RolloutSpec,
    c: &Check,
    pipeline: &mut PipelineSpec,
) -> Result<Vec<WorkerGroupSpec>, ScenarioError> {
    let src = c.src;
    let Some(list) = &raw.cluster.workers else {
        let dis = raw.pipeline.disaggregated.clone().unwrap_or_default();
        let total = shape.nodes * shape.gpus_per_node;
        return auto_layout(pipeline.layout, total, shape.gpus_per_node, rollout.tp, dis.rollout_gpus, c, pipeline);
    };
    let mut groups = Vec::new();
    for (i, g) in list.iter().enumerate() {
        let f = |k: &str| format!("cluster.workers[{i}].{k}");
        let name = c.require(g.name.clone(), &f("name"), "a worker name")?;
        let tags = c.require(g.tags.clone(), &f("tags"), "a list of tags such as [\"rollout\"]")?;
        if tags.is_empty() {
            return Err(src.error(&f("tags"), "empty; give at least one tag (rollout, train, or your own)"));
        }
        let start = match g.start.as_deref() {
            None if tags.iter().any(|t| t == "rollout") => Role::Rollout,
            None => Role::Train,
            Some(name @ ("rollout" | "train")) => {
                if !tags.iter().any(|t| t == name) {
                    return Err(src.error(
                        &f("start"),
                        format!("{name:?} is not one of the group's tags {tags:?}; a worker can only hold a state it is tagged for"),
                    ));
                }
                if name == "rollout" {
                    Role::Rollout
                } else {
                    Role::Train
                }
            }
            Some(other) => {
                return Err(
                    src.error(&f("start"), format!("unknown state {other:?}; expected \"rollout\" or \"train\""))
                )
            }
        };
        let group_gpu = match &g.gpu {
            None => None,
            Some(p) => Some(gpu_preset(p).ok_or_else(|| {
                src.error(&f("gpu"), format!("unknown GPU preset {p:?}; expected one of {}", gpu_names()))
            })?),
        };
        groups.push(WorkerGroupSpec {
            name,
            count: c.count_max(g.count, &f("count"), Some(1), MAX_GPUS, "workers in this group")?,
            tp: c.count_max(g.tp, &f("tp"), Some(rollout.tp), MAX_GPUS, "GPUs per worker")?,
            tags,
            start,
            gpu: group_gpu,
        });
    }
    Ok(groups)
}

/// The GPU presets and their aliases, for error messages.
fn gpu_names() -> String {
    let aliases: Vec<String> = GPU_ALIASES.iter().map(|(a, p)| format!("{a} (= {p})")).collect();
    format!("{}, or {}", GPU_PRESETS.join(", "), aliases.join(", "))
}

/// Whether explicit workers lay out disjoint pools (the split layout) rather than time-sliced workers.
pub(super) fn explicit_workers_are_split(workers: &Option<Vec<RawWorkerGroup>>) -> bool {
    let both = |g: &RawWorkerGroup| {
        g.tags.as_ref().is_some_and(|t| t.iter().any(|x| x == "rollout") && t.iter().any(|x| x == "train"))
    };
    matches!(workers, Some(list) if !list.iter().any(both))
}

/// Places the workers on the cluster and checks that the pipeline finds the tags it needs.
pub(super) fn build_cluster(
    shape: &Shape,
    groups: &[WorkerGroupSpec],
    kind: PipelineKind,
    layout: Layout,
    c: &Check,
    explicit: bool,
) -> Result<Cluster, ScenarioError> {
    let Shape { gpu, nodes, gpus_per_node } = shape;
    let field = if explicit { "cluster.workers" } else { "cluster.nodes" };
    let needed: u64 = groups.iter().map(|g| g.count as u64 * g.tp as u64).sum();
    let available = *nodes as u64 * *gpus_per_node as u64;
    if needed > available {
        return Err(c.src.error(
            field,
            format!("the workers need {needed} GPUs but the cluster has {available} ({nodes} nodes × {gpus_per_node})"),
        ));
    }
    let cluster = Cluster::build(gpu.clone(), *nodes, *gpus_per_node, groups).map_err(|e| match e {
            PlacementError::TooManyGpus { needed, available } => c.src.error(
                field,
                format!("the workers need {needed} GPUs but the cluster has {available} ({nodes} nodes × {gpus_per_node})"),
            ),
            PlacementError::StraddlesNodes { worker, tp, gpus_per_node } => c.src.error(
                field,
                format!("worker `{worker}` has tp={tp}, which must be a multiple of gpus_per_node ({gpus_per_node}) to span whole nodes"),
            ),
    })?;
    check_unique_names(&cluster, c)?;
    check_tags(kind, layout, &cluster, c, explicit)?;
    Ok(cluster)
}

/// Two workers of one name would mix their timeline rows and failure events: the second one is refused.
fn check_unique_names(cluster: &Cluster, c: &Check) -> Result<(), ScenarioError> {
    let mut seen = std::collections::BTreeMap::new();
    for w in &cluster.workers {
        if let Some(first) = seen.insert(w.name.as_str(), w.group) {
            let again = if first == w.group { "the same group" } else { "an earlier group" };
            return Err(c.src.error(
                &format!("cluster.workers[{}].name", w.group),
                format!(
                    "worker name `{}` is already used by {again} (cluster.workers[{first}]); worker names must be unique (a group of count > 1 names its workers <name>0, <name>1, …)",
                    w.name
                ),
            ));
        }
    }
    Ok(())
}

/// The layout a pipeline uses when the scenario lists no workers.
fn auto_layout(
    layout: Layout,
    total: u32,
    gpus_per_node: u32,
    tp: u32,
    rollout_gpus: Option<u32>,
    c: &Check,
    pipeline: &mut PipelineSpec,
) -> Result<Vec<WorkerGroupSpec>, ScenarioError> {
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // An engine lives inside one node, or spans whole nodes (its all-reduces then cross the NICs).
    let spans_nodes = tp > gpus_per_node;
    if (!spans_nodes && !gpus_per_node.is_multiple_of(tp)) || (spans_nodes && !tp.is_multiple_of(gpus_per_node)) {
        return Err(c.src.error(
            "rollout.tp",
            format!(
                "{tp} must divide gpus_per_node ({gpus_per_node}), or be a multiple of it (an engine over whole nodes), for the automatic layout"
            ),
        ));
    }
    // Engines over whole nodes must tile the GPUs that time-slice or can be lent (a split layout trains on the rest).
    if spans_nodes && layout != Layout::Split && !total.is_multiple_of(tp) {
        return Err(c.src.error(
            "rollout.tp",
            format!(
                "engines of {tp} GPUs do not tile the cluster's {total} GPUs; expected a multiple of gpus_per_node ({gpus_per_node}) that divides {total}"
            ),
        ));
    }
    match layout {
        Layout::TimeSliced => Ok(vec![WorkerGroupSpec {
            name: "hybrid".into(),
            count: total / tp,
            tp,
            tags: tags(&["rollout", "train"]),
            start: Role::Rollout,
            gpu: None,
        }]),
        Layout::Split | Layout::Lendable => {
            // Lendable train workers also carry `rollout` (so they can be lent) but start holding `train`.
            let train_tags = if layout == Layout::Lendable { tags(&["train", "rollout"]) } else { tags(&["train"]) };
            let field = "pipeline.disaggregated.rollout_gpus";
            // Default: half the GPUs (whole engines) generate, the rest train.
            if rollout_gpus.is_none() && tp >= total {
                return Err(c.src.error(
                    "rollout.tp",
                    format!(
                        "one engine of {tp} GPUs leaves none of the cluster's {total} GPUs to train; expected fewer"
                    ),
                ));
            }
            let rollout = rollout_gpus.unwrap_or(((total / 2) / tp).max(1) * tp);
            if rollout == 0 || rollout >= total {
                return Err(c.src.error(
                    field,
                    format!("expected between 1 and {} GPUs (the rest train), got {rollout}", total.saturating_sub(1)),
                ));
            }
            if !rollout.is_multiple_of(tp) {
                return Err(c.src.error(field, format!("{rollout} is not a multiple of rollout.tp ({tp})")));
            }
            pipeline.rollout_gpus = Some(rollout);
            let train = total - rollout;
            if layout == Layout::Lendable {
                // Lent train workers run rollout engines of rollout.tp GPUs each, so the train pool is cut the same
                // way (training still uses all of them together).
                return Ok(vec![
                    WorkerGroupSpec {
                        name: "rollout".into(),
                        count: rollout / tp,
                        tp,
                        tags: tags(&["rollout"]),
                        start: Role::Rollout,
                        gpu: None,
                    },
                    WorkerGroupSpec {
                        name: "train".into(),
                        count: train / tp,
                        tp,
                        tags: train_tags,
                        start: Role::Train,
                        gpu: None,
                    },
                ]);
            }
            // Training shards: whole nodes where possible, then the remainder as one smaller group.
            let mut groups = vec![WorkerGroupSpec {
                name: "rollout".into(),
                count: rollout / tp,
                tp,
                tags: tags(&["rollout"]),
                start: Role::Rollout,
                gpu: None,
            }];
            // One train worker per node part: first the rest of the node the rollout GPUs end in, then whole nodes.
            let first_free_in_node = rollout % gpus_per_node;
            let mut left = train;
            let mut i = 0;
            while left > 0 {
                let room =
                    if i == 0 && first_free_in_node != 0 { gpus_per_node - first_free_in_node } else { gpus_per_node };
                let n = left.min(room);
                groups.push(WorkerGroupSpec {
                    name: format!("train{i}"),
                    count: 1,
                    tp: n,
                    tags: train_tags.clone(),
                    start: Role::Train,
                    gpu: None,
                });
                left -= n;
                i += 1;
            }
            Ok(groups)
        }
    }
}

fn check_tags(
    kind: PipelineKind,
    layout: Layout,
    cluster: &Cluster,
    c: &Check,
    explicit: bool,
) -> Result<(), ScenarioError> {
    let field = if explicit { "cluster.workers" } else { "pipeline.type" };
    for tag in ["rollout", "train"] {
        if cluster.with_tag(tag).next().is_none() {
            return Err(c
                .src
                .error(field, format!("no worker has the tag `{tag}`, which the {} pipeline needs", kind.name())));
        }
    }
    let both = |w: &&crate::cluster::Worker| w.has_tag("rollout") && w.has_tag("train");
    match layout {
        Layout::TimeSliced => {
            if let Some(w) = cluster.workers.iter().find(|w| w.has_tag("rollout") != w.has_tag("train")) {
                let (has, lacks) = if w.has_tag("rollout") { ("rollout", "train") } else { ("train", "rollout") };
                return Err(c.src.error(
                    field,
                    format!("worker `{}` has `{has}` but not `{lacks}`; the {} pipeline on this layout time-slices every worker between rollout and training", w.name, kind.name()),
                ));
            }
            if let Some(w) = cluster.workers.iter().find(|w| w.start != Role::Rollout) {
                return Err(c.src.error(
                    field,
                    format!("worker `{}` starts as `train`; time-sliced workers start as `rollout`", w.name),
                ));
            }
        }
        Layout::Split => {
            if let Some(w) = cluster.workers.iter().find(both) {
                return Err(c.src.error(
                    field,
                    format!(
                        "worker `{}` has both `rollout` and `train`; the {} pipeline needs separate pools",
                        w.name,
                        kind.name()
                    ),
                ));
            }
        }
        Layout::Lendable => {
            if !cluster.workers.iter().any(|w| w.start == Role::Rollout) {
                return Err(c.src.error(field, "no worker starts as `rollout`; seamless needs a rollout pool"));
            }
            if let Some(w) = cluster.workers.iter().find(|w| w.start == Role::Train && !w.has_tag("rollout")) {
                return Err(c.src.error(
                    field,
                    format!("train worker `{}` lacks the `rollout` tag, so it could never be lent to rollout (tag it [\"train\", \"rollout\"] with start = \"train\", or use disaggregated)", w.name),
                ));
            }
            if let Some(w) = cluster.workers.iter().find(|w| w.start == Role::Rollout && w.has_tag("train")) {
                return Err(c.src.error(
                    field,
                    format!("worker `{}` starts as `rollout` but carries `train`; seamless trains on the workers that start as `train`", w.name),
                ));
            }
        }
    }
    Ok(())
}

/// No GPU streams HBM faster than its datasheet: the framework's shares (measured on an H100) times a GPU's own
/// relative to it stay at most 1.
pub(super) fn check_hbm_shares(cluster: &Cluster, rollout: &RolloutSpec, c: &Check) -> Result<(), ScenarioError> {
    for w in &cluster.workers {
        let g = &w.gpu;
        for (what, share) in
            [("hbm_efficiency", rollout.hbm_efficiency), ("kv_read_efficiency", rollout.kv_read_efficiency)]
        {
            if share * g.hbm_efficiency_vs_h100 > 1.0 + 1e-9 {
                return Err(c.src.error(
                    "cluster.hbm_efficiency_vs_h100",
                    format!(
                        "{} × rollout.{what} {} = {:.3} of {}'s HBM bandwidth; expected at most 1 (the datasheet rate)",
                        g.hbm_efficiency_vs_h100,
                        share,
                        share * g.hbm_efficiency_vs_h100,
                        g.name
                    ),
                ));
            }
        }
    }
    Ok(())
}
