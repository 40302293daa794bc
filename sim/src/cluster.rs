//! The cluster: GPUs placed on nodes, their links as a petgraph topology, and workers (GPU groups with tags).

use crate::cost::Role;
use crate::hardware::GpuSpec;
use petgraph::graph::{NodeIndex, UnGraph};
use std::collections::{BTreeMap, BinaryHeap};

/// Index of a worker in `Cluster::workers`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerId(pub u32);

impl WorkerId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A group of GPUs that acts as one unit: a tensor-parallel rollout engine, a training shard, or both in turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Worker {
    pub id: WorkerId,
    pub name: String,
    /// Global GPU indices (node · gpus_per_node + local index).
    pub gpus: Vec<u32>,
    /// The node that holds the worker's first GPU.
    pub node: u32,
    /// Tensor-parallel degree when it runs a rollout engine (= number of GPUs).
    pub tp: u32,
    /// Capability tags, sorted (`rollout`, `train`, or user-defined).
    pub tags: Vec<String>,
    /// Index of the worker group (`[[cluster.workers]]` entry) it was made from.
    pub group: u32,
    /// The state it holds when the run starts (one of its tags; later changed only by a retag).
    pub start: Role,
    /// Its GPU type (the cluster's unless its group names another).
    pub gpu: GpuSpec,
}

impl Worker {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    pub fn gpu_count(&self) -> u32 {
        self.gpus.len() as u32
    }
}

/// What a vertex of the topology graph stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vertex {
    Gpu(u32),
    /// The NVLink switch of one node.
    NvSwitch(u32),
    /// The inter-node network fabric (one non-blocking switch).
    Fabric,
}

/// The cluster with its link graph. Edge weights are bandwidths in GB/s.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub gpu: GpuSpec,
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub workers: Vec<Worker>,
    graph: UnGraph<Vertex, f64>,
    gpu_vertex: Vec<NodeIndex>,
}

/// A worker group before placement: `count` workers of `tp` GPUs each.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerGroupSpec {
    pub name: String,
    pub count: u32,
    pub tp: u32,
    pub tags: Vec<String>,
    /// The state its workers hold at the start (must be one of `tags`).
    pub start: Role,
    /// A GPU type other than the cluster's (heterogeneous clusters).
    pub gpu: Option<GpuSpec>,
}

/// Why workers could not be placed.
#[derive(Clone, Debug, PartialEq)]
pub enum PlacementError {
    TooManyGpus { needed: u32, available: u32 },
    StraddlesNodes { worker: String, tp: u32, gpus_per_node: u32 },
}

impl Cluster {
    /// Places the groups' workers on GPUs in order, filling node by node; a worker never straddles two nodes
    /// when it fits in one (tensor parallelism across nodes would cross the slow network).
    pub fn build(
        gpu: GpuSpec,
        nodes: u32,
        gpus_per_node: u32,
        groups: &[WorkerGroupSpec],
    ) -> Result<Cluster, PlacementError> {
        let available = nodes * gpus_per_node;
        let mut next_gpu = 0u32;
        let mut workers = Vec::new();
        for (group_index, group) in groups.iter().enumerate() {
            for i in 0..group.count {
                let name = if group.count == 1 { group.name.clone() } else { format!("{}{}", group.name, i) };
                if group.tp <= gpus_per_node {
                    let room = gpus_per_node - next_gpu % gpus_per_node;
                    if room < group.tp {
                        next_gpu += room; // skip to the next node rather than straddle
                    }
                } else if !group.tp.is_multiple_of(gpus_per_node) || !next_gpu.is_multiple_of(gpus_per_node) {
                    return Err(PlacementError::StraddlesNodes { worker: name, tp: group.tp, gpus_per_node });
                }
                let gpus: Vec<u32> = (next_gpu..next_gpu + group.tp).collect();
                next_gpu += group.tp;
                if next_gpu > available {
                    let needed = groups.iter().map(|g| g.count * g.tp).sum::<u32>().max(next_gpu);
                    return Err(PlacementError::TooManyGpus { needed, available });
                }
                let mut tags = group.tags.clone();
                tags.sort();
                tags.dedup();
                workers.push(Worker {
                    id: WorkerId(workers.len() as u32),
                    node: gpus[0] / gpus_per_node,
                    name,
                    gpus,
                    tp: group.tp,
                    tags,
                    group: group_index as u32,
                    start: group.start,
                    gpu: group.gpu.clone().unwrap_or_else(|| gpu.clone()),
                });
            }
        }
        let mut graph = UnGraph::new_undirected();
        let fabric = graph.add_node(Vertex::Fabric);
        let switches: Vec<NodeIndex> = (0..nodes).map(|n| graph.add_node(Vertex::NvSwitch(n))).collect();
        let mut gpu_vertex = Vec::with_capacity(available as usize);
        let mut spec_of = vec![&gpu; available as usize];
        for w in &workers {
            for &g in &w.gpus {
                spec_of[g as usize] = &w.gpu;
            }
        }
        for g in 0..available {
            let v = graph.add_node(Vertex::Gpu(g));
            let spec = spec_of[g as usize];
            graph.add_edge(v, switches[(g / gpus_per_node) as usize], spec.nvlink_gbytes_per_s);
            graph.add_edge(v, fabric, spec.network_gbits_per_s / 8.0);
            gpu_vertex.push(v);
        }
        Ok(Cluster { gpu, nodes, gpus_per_node, workers, graph, gpu_vertex })
    }

    pub fn total_gpus(&self) -> u32 {
        self.nodes * self.gpus_per_node
    }

    /// Rental price of the whole cluster per hour, US dollars: each worker's GPUs at their type's price, GPUs no
    /// worker uses at the cluster's.
    pub fn usd_per_hour(&self) -> f64 {
        let used: u32 = self.workers.iter().map(|w| w.gpu_count()).sum();
        let workers: f64 = self.workers.iter().map(|w| w.gpu_count() as f64 * w.gpu.price_per_gpu_hour).sum();
        workers + (self.total_gpus() - used) as f64 * self.gpu.price_per_gpu_hour
    }

    /// Whether the workers use more than one GPU type.
    pub fn is_heterogeneous(&self) -> bool {
        self.workers.iter().any(|w| w.gpu != self.gpu)
    }

    pub fn worker(&self, id: WorkerId) -> &Worker {
        &self.workers[id.index()]
    }

    /// Workers carrying `tag`, in id order.
    pub fn with_tag<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Worker> + 'a {
        self.workers.iter().filter(move |w| w.has_tag(tag))
    }

    /// The bandwidth (GB/s) of the widest path between two GPUs: the bottleneck link a copy would take.
    /// A GPU to itself is unbounded (`f64::INFINITY`).
    pub fn path_gbytes_per_s(&self, from_gpu: u32, to_gpu: u32) -> f64 {
        if from_gpu == to_gpu {
            return f64::INFINITY;
        }
        // Widest-path Dijkstra: maximise the minimum edge weight along the path.
        let (src, dst) = (self.gpu_vertex[from_gpu as usize], self.gpu_vertex[to_gpu as usize]);
        let mut best: BTreeMap<usize, f64> = BTreeMap::new();
        let mut heap: BinaryHeap<(OrdF64, usize)> = BinaryHeap::new();
        best.insert(src.index(), f64::INFINITY);
        heap.push((OrdF64(f64::INFINITY), src.index()));
        while let Some((OrdF64(width), v)) = heap.pop() {
            if v == dst.index() {
                return width;
            }
            if width < best.get(&v).copied().unwrap_or(0.0) {
                continue;
            }
            for edge in self.graph.edges(NodeIndex::new(v)) {
                use petgraph::visit::EdgeRef;
                let next = if edge.source().index() == v { edge.target() } else { edge.source() };
                let w = width.min(*edge.weight());
                if w > best.get(&next.index()).copied().unwrap_or(0.0) {
                    best.insert(next.index(), w);
                    heap.push((OrdF64(w), next.index()));
                }
            }
        }
        0.0
    }

    /// Bandwidth (GB/s per receiving GPU) for copying weights from `from` workers into each GPU of `to`: every
    /// receiving GPU pulls its shard over its own widest path from the nearest sending GPU; the slowest receiver
    /// sets the pace. A receiving GPU that is also a sender reshards over NVLink.
    pub fn copy_gbytes_per_s(&self, from: &[WorkerId], to: &[WorkerId]) -> f64 {
        let senders: Vec<u32> = from.iter().flat_map(|w| self.worker(*w).gpus.iter().copied()).collect();
        let mut slowest = f64::INFINITY;
        for w in to {
            for &dst in &self.worker(*w).gpus {
                let mut fastest: f64 = 0.0;
                for &src in &senders {
                    let bw = if src == dst { self.gpu.nvlink_gbytes_per_s } else { self.path_gbytes_per_s(src, dst) };
                    fastest = fastest.max(bw);
                }
                slowest = slowest.min(fastest);
            }
        }
        if slowest.is_finite() {
            slowest
        } else {
            self.gpu.nvlink_gbytes_per_s
        }
    }

    /// The slowest link (GB/s per GPU) inside a set of workers' GPUs, as a ring all-reduce over them would see it.
    pub fn ring_gbytes_per_s(&self, workers: &[WorkerId]) -> f64 {
        let gpus: Vec<u32> = workers.iter().flat_map(|w| self.worker(*w).gpus.iter().copied()).collect();
        let nodes: std::collections::BTreeSet<u32> = gpus.iter().map(|g| g / self.gpus_per_node).collect();
        if gpus.len() <= 1 {
            return f64::INFINITY;
        }
        if nodes.len() == 1 {
            self.path_gbytes_per_s(gpus[0], gpus[1])
        } else {
            // Some hop of the ring crosses nodes.
            let a = gpus[0];
            let b = *gpus.iter().find(|g| *g / self.gpus_per_node != a / self.gpus_per_node).unwrap_or(&a);
            self.path_gbytes_per_s(a, b)
        }
    }
}

/// f64 with a total order, for the widest-path heap (bandwidths are finite or +inf, never NaN).
#[derive(Clone, Copy, Debug, PartialEq)]
struct OrdF64(f64);
impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::gpu_preset;

    fn group(name: &str, count: u32, tp: u32, tags: &[&str]) -> WorkerGroupSpec {
        let start = if tags.contains(&"rollout") { Role::Rollout } else { Role::Train };
        WorkerGroupSpec {
            name: name.into(),
            count,
            tp,
            tags: tags.iter().map(|s| s.to_string()).collect(),
            start,
            gpu: None,
        }
    }

    #[test]
    fn placement_fills_nodes_without_straddling() {
        let gpu = gpu_preset("H800").unwrap();
        let c = Cluster::build(gpu, 2, 8, &[group("r", 2, 3, &["rollout"]), group("t", 1, 8, &["train"])]).unwrap();
        assert_eq!(c.workers[0].gpus, vec![0, 1, 2]);
        assert_eq!(c.workers[1].gpus, vec![3, 4, 5]);
        assert_eq!(c.workers[2].gpus, (8..16).collect::<Vec<_>>());
        assert_eq!(c.workers[2].node, 1);
        assert_eq!(c.workers[0].name, "r0");
        assert_eq!(c.workers[2].name, "t");
    }

    #[test]
    fn too_many_gpus_is_reported() {
        let gpu = gpu_preset("H800").unwrap();
        let err = Cluster::build(gpu, 1, 8, &[group("r", 3, 4, &["rollout"])]).unwrap_err();
        assert_eq!(err, PlacementError::TooManyGpus { needed: 12, available: 8 });
    }

    #[test]
    fn widest_path_is_nvlink_inside_a_node_and_network_across() {
        let gpu = gpu_preset("H800").unwrap();
        let c = Cluster::build(gpu, 2, 8, &[group("r", 2, 8, &["rollout"])]).unwrap();
        assert_eq!(c.path_gbytes_per_s(0, 7), 200.0);
        assert_eq!(c.path_gbytes_per_s(0, 8), 50.0);
        assert_eq!(c.copy_gbytes_per_s(&[WorkerId(0)], &[WorkerId(1)]), 50.0);
        assert_eq!(c.copy_gbytes_per_s(&[WorkerId(0)], &[WorkerId(0)]), 200.0);
        assert_eq!(c.ring_gbytes_per_s(&[WorkerId(0), WorkerId(1)]), 50.0);
        assert_eq!(c.ring_gbytes_per_s(&[WorkerId(0)]), 200.0);
    }
}
