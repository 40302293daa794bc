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
    levels: Levels,
}

/// The graph's two levels (NVLink inside a node, the network between nodes) summarised per GPU and per node, from
/// which the widest path between two GPUs follows in closed form in O(1), instead of a search of the whole graph
/// per pair (issue #11: GPUs² searches of GPUs · log GPUs each made the first weight sync of 1,024 GPUs take
/// minutes). Derivation in `Cluster::path_gbytes_per_s`; checked against the search by a property test.
#[derive(Clone, Debug)]
struct Levels {
    /// Per GPU: its link to its node's NVLink switch, GB/s.
    nvlink: Vec<f64>,
    /// Per GPU: its link to the fabric (its NIC), GB/s.
    network: Vec<f64>,
    /// Per node: the widest detour from its NVLink switch to the fabric, through one of its GPUs
    /// (max over them of min(nvlink, network)).
    bridge: Vec<f64>,
    /// Per GPU: the widest path from it to the fabric: its own NIC, or NVLink to its switch then the node's bridge.
    exit: Vec<f64>,
}

impl Levels {
    fn new(nvlink: Vec<f64>, network: Vec<f64>, gpus_per_node: u32) -> Levels {
        let bridge: Vec<f64> = nvlink
            .chunks(gpus_per_node as usize)
            .zip(network.chunks(gpus_per_node as usize))
            .map(|(v, e)| v.iter().zip(e).map(|(v, e)| v.min(*e)).fold(0.0, f64::max))
            .collect();
        let exit =
            (0..nvlink.len()).map(|g| network[g].max(nvlink[g].min(bridge[g / gpus_per_node as usize]))).collect();
        Levels { nvlink, network, bridge, exit }
    }
}

/// The search treats a link of no bandwidth as absent and an unreachable GPU as 0 GB/s; validation keeps every
/// bandwidth positive, so this only keeps the closed form equal to it for any input.
fn at_least_zero(gbytes_per_s: f64) -> f64 {
    if gbytes_per_s > 0.0 {
        gbytes_per_s
    } else {
        0.0
    }
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
        let mut nvlink = Vec::with_capacity(available as usize);
        let mut network = Vec::with_capacity(available as usize);
        for g in 0..available {
            let v = graph.add_node(Vertex::Gpu(g));
            let spec = spec_of[g as usize];
            nvlink.push(spec.nvlink_gbytes_per_s);
            network.push(spec.network_gbits_per_s / 8.0);
            graph.add_edge(v, switches[(g / gpus_per_node) as usize], nvlink[g as usize]);
            graph.add_edge(v, fabric, network[g as usize]);
            gpu_vertex.push(v);
        }
        let levels = Levels::new(nvlink, network, gpus_per_node);
        Ok(Cluster { gpu, nodes, gpus_per_node, workers, graph, gpu_vertex, levels })
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
    /// A GPU to itself is unbounded (`f64::INFINITY`). Equal to `widest_path_search_gbytes_per_s`, in O(1).
    ///
    /// Why the closed form is exact: a path is as wide as its narrowest link, so the widest path's width is the
    /// largest t at which the two GPUs are still connected by links of at least t. A GPU has two links (NVLink to
    /// its node's switch, v; its NIC to the fabric, e); a path through another GPU c enters and leaves by them, so
    /// c only bridges its node's switch and the fabric, at min(v_c, e_c); the widest such bridge of node n is
    /// `bridge[n]`. Another node's switch leads only back to the fabric. So between a and b:
    /// - on one node (switch S, fabric F): the widest of a–S–b, a–F–b, a–S–F–b and a–F–S–b:
    ///   max(min(v_a, v_b), min(e_a, e_b), min(v_a, bridge, e_b), min(e_a, bridge, v_b));
    /// - on two nodes: every path crosses the fabric; each GPU reaches it by its NIC or by NVLink and its node's
    ///   bridge, at `exit` = max(e, min(v, bridge)); the width is min(exit_a, exit_b).
    ///
    /// (A bridge through a or b itself is never wider than the direct route above, so `bridge` may include them.)
    pub fn path_gbytes_per_s(&self, from_gpu: u32, to_gpu: u32) -> f64 {
        if from_gpu == to_gpu {
            return f64::INFINITY;
        }
        let l = &self.levels;
        let (a, b) = (from_gpu as usize, to_gpu as usize);
        let (node_a, node_b) = (from_gpu / self.gpus_per_node, to_gpu / self.gpus_per_node);
        if node_a != node_b {
            return at_least_zero(l.exit[a].min(l.exit[b]));
        }
        let bridge = l.bridge[node_a as usize];
        let (va, vb, ea, eb) = (l.nvlink[a], l.nvlink[b], l.network[a], l.network[b]);
        at_least_zero(va.min(vb).max(ea.min(eb)).max(va.min(bridge).min(eb)).max(ea.min(bridge).min(vb)))
    }

    /// The widest path between two GPUs found by searching the link graph (a widest-path Dijkstra, O(GPUs · log
    /// GPUs) per pair): the reference `path_gbytes_per_s` is tested against, and the way to answer for a topology
    /// whose levels do not give a closed form.
    pub fn widest_path_search_gbytes_per_s(&self, from_gpu: u32, to_gpu: u32) -> f64 {
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
        self.copy_sources(from).gbytes_per_s_into(to)
    }

    /// The sending GPUs of a weight copy, summarised once so that each receiver's widest path from them costs
    /// O(log senders) instead of one path per sender (O(senders + receivers) per copy, not senders × receivers).
    pub fn copy_sources(&self, from: &[WorkerId]) -> CopySources<'_> {
        let mut gpus: Vec<u32> = from.iter().flat_map(|w| self.worker(*w).gpus.iter().copied()).collect();
        gpus.sort_unstable();
        gpus.dedup();
        let l = &self.levels;
        let mut nodes: Vec<NodeSenders> = Vec::new();
        let mut widest_exit: Option<(f64, u32)> = None;
        let mut second_exit: Option<f64> = None;
        for &g in &gpus {
            let node = g / self.gpus_per_node;
            let (v, e, x) = (l.nvlink[g as usize], l.network[g as usize], l.exit[g as usize]);
            match nodes.last_mut() {
                Some(n) if n.node == node => {
                    n.nvlink.push(v, g);
                    n.network.push(e, g);
                }
                _ => nodes.push(NodeSenders { node, nvlink: Top2::new(v, g), network: Top2::new(e, g) }),
            }
            // The widest exit of any sender, and the widest on another node than that one's.
            widest_exit = match widest_exit {
                None => Some((x, node)),
                Some((x1, n1)) if n1 == node => Some((x1.max(x), n1)),
                Some((x1, _)) if x > x1 => {
                    second_exit = Some(x1);
                    Some((x, node))
                }
                Some(top) => {
                    second_exit = Some(second_exit.map_or(x, |s| s.max(x)));
                    Some(top)
                }
            };
        }
        CopySources { cluster: self, gpus, nodes, widest_exit, second_exit }
    }

    /// The slowest link (GB/s per GPU) inside a set of workers' GPUs, as a ring all-reduce over them would see it.
    pub fn ring_gbytes_per_s(&self, workers: &[WorkerId]) -> f64 {
        let gpus: Vec<u32> = workers.iter().flat_map(|w| self.worker(*w).gpus.iter().copied()).collect();
        if gpus.len() <= 1 {
            return f64::INFINITY;
        }
        let node = |g: u32| g / self.gpus_per_node;
        let a = gpus[0];
        match gpus.iter().find(|g| node(**g) != node(a)) {
            // Some hop of the ring crosses nodes.
            Some(&b) => self.path_gbytes_per_s(a, b),
            None => self.path_gbytes_per_s(gpus[0], gpus[1]),
        }
    }
}

/// The senders of a weight copy (`Cluster::copy_sources`): sorted, deduplicated GPUs, per node the two widest
/// NVLinks and NICs among them, and the two widest exits to the fabric of different nodes.
#[derive(Clone, Debug)]
pub struct CopySources<'a> {
    cluster: &'a Cluster,
    gpus: Vec<u32>,
    /// One entry per node with senders, in node order.
    nodes: Vec<NodeSenders>,
    /// The widest `exit` of any sender, with its node.
    widest_exit: Option<(f64, u32)>,
    /// The widest `exit` of a sender on another node than `widest_exit`'s.
    second_exit: Option<f64>,
}

#[derive(Clone, Debug)]
struct NodeSenders {
    node: u32,
    nvlink: Top2,
    network: Top2,
}

/// The widest value over a node's senders, with its GPU, and the next widest (of another GPU): enough to know the
/// widest over all of them but one.
#[derive(Clone, Copy, Debug)]
struct Top2 {
    first: (f64, u32),
    second: Option<f64>,
}

impl Top2 {
    fn new(v: f64, gpu: u32) -> Top2 {
        Top2 { first: (v, gpu), second: None }
    }

    fn push(&mut self, v: f64, gpu: u32) {
        if v > self.first.0 {
            self.second = Some(self.first.0);
            self.first = (v, gpu);
        } else {
            self.second = Some(self.second.map_or(v, |s| s.max(v)));
        }
    }

    /// The widest over every GPU but `gpu`.
    fn excluding(&self, gpu: u32) -> Option<f64> {
        if self.first.1 == gpu {
            self.second
        } else {
            Some(self.first.0)
        }
    }
}

impl CopySources<'_> {
    /// GB/s into receiving GPU `dst` from the nearest sender: the widest of its paths from every sender, or NVLink
    /// when it is a sender itself (0 without senders). Equal to the maximum of `path_gbytes_per_s` over the
    /// senders, because each term of the closed form is a min with one side from the sender: the maximum over
    /// senders of min(x_a, c) is min(max x_a, c), exactly, in floating point too (min and max only select).
    pub fn gbytes_per_s_into_gpu(&self, dst: u32) -> f64 {
        let c = self.cluster;
        let l = &c.levels;
        let node = dst / c.gpus_per_node;
        let mut fastest: f64 = 0.0;
        if self.gpus.binary_search(&dst).is_ok() {
            fastest = c.gpu.nvlink_gbytes_per_s;
        }
        let b = dst as usize;
        if let Ok(i) = self.nodes.binary_search_by_key(&node, |n| n.node) {
            let n = &self.nodes[i];
            if let (Some(va), Some(ea)) = (n.nvlink.excluding(dst), n.network.excluding(dst)) {
                let (vb, eb, bridge) = (l.nvlink[b], l.network[b], l.bridge[node as usize]);
                let w = va.min(vb).max(ea.min(eb)).max(va.min(bridge).min(eb)).max(ea.min(bridge).min(vb));
                fastest = fastest.max(at_least_zero(w));
            }
        }
        let other_node = match self.widest_exit {
            Some((x, n)) if n != node => Some(x),
            _ => self.second_exit,
        };
        if let Some(x) = other_node {
            fastest = fastest.max(at_least_zero(x.min(l.exit[b])));
        }
        fastest
    }

    /// GB/s per receiving GPU for a copy into every GPU of `to`: the slowest receiver's (NVLink when `to` has none).
    pub fn gbytes_per_s_into(&self, to: &[WorkerId]) -> f64 {
        let c = self.cluster;
        let slowest = to
            .iter()
            .flat_map(|w| c.worker(*w).gpus.iter())
            .fold(f64::INFINITY, |slowest, &dst| slowest.min(self.gbytes_per_s_into_gpu(dst)));
        if slowest.is_finite() {
            slowest
        } else {
            c.gpu.nvlink_gbytes_per_s
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

    fn spec(name: &str, nvlink_gbytes_per_s: f64, network_gbits_per_s: f64) -> GpuSpec {
        GpuSpec { name: name.into(), nvlink_gbytes_per_s, network_gbits_per_s, ..gpu_preset("H800").unwrap() }
    }

    /// A GPU with a slow NIC reaches another node faster through a neighbour's NIC (NVLink, then the neighbour's
    /// link to the fabric): the closed form must see that detour, as the search does.
    #[test]
    fn a_slow_nic_is_bypassed_over_nvlink_through_a_neighbour() {
        let slow = WorkerGroupSpec { gpu: Some(spec("slow-nic", 200.0, 100.0)), ..group("s", 1, 1, &["train"]) };
        let c = Cluster::build(spec("fast", 200.0, 400.0), 2, 2, &[slow, group("r", 2, 1, &["rollout"])]).unwrap();
        // GPU 0: NIC 12.5 GB/s; GPU 1 (node 0) and GPUs 2, 3 (node 1): 50 GB/s.
        assert_eq!(c.widest_path_search_gbytes_per_s(0, 2), 50.0);
        assert_eq!(c.path_gbytes_per_s(0, 2), 50.0);
        assert_eq!(c.path_gbytes_per_s(0, 1), 200.0);
        assert_eq!(c.copy_gbytes_per_s(&[WorkerId(0)], &[WorkerId(1), WorkerId(2)]), 50.0);
        // Node 1's only GPUs are receivers too: from GPU 2 into GPU 3, NVLink.
        assert_eq!(c.copy_gbytes_per_s(&[WorkerId(1)], &[WorkerId(2)]), 50.0);
        assert_eq!(c.copy_gbytes_per_s(&[WorkerId(1), WorkerId(2)], &[WorkerId(2)]), 200.0);
    }

    /// The copy bandwidth as it was computed before the closed form: one widest-path search per (sender,
    /// receiver) GPU pair.
    fn copy_by_search(c: &Cluster, from: &[WorkerId], to: &[WorkerId]) -> f64 {
        let senders: Vec<u32> = from.iter().flat_map(|w| c.worker(*w).gpus.iter().copied()).collect();
        let mut slowest = f64::INFINITY;
        for w in to {
            for &dst in &c.worker(*w).gpus {
                let mut fastest: f64 = 0.0;
                for &src in &senders {
                    let bw = if src == dst {
                        c.gpu.nvlink_gbytes_per_s
                    } else {
                        c.widest_path_search_gbytes_per_s(src, dst)
                    };
                    fastest = fastest.max(bw);
                }
                slowest = slowest.min(fastest);
            }
        }
        if slowest.is_finite() {
            slowest
        } else {
            c.gpu.nvlink_gbytes_per_s
        }
    }

    /// The ring bandwidth as it was computed before the closed form.
    fn ring_by_search(c: &Cluster, workers: &[WorkerId]) -> f64 {
        let gpus: Vec<u32> = workers.iter().flat_map(|w| c.worker(*w).gpus.iter().copied()).collect();
        let nodes: std::collections::BTreeSet<u32> = gpus.iter().map(|g| g / c.gpus_per_node).collect();
        if gpus.len() <= 1 {
            return f64::INFINITY;
        }
        if nodes.len() == 1 {
            c.widest_path_search_gbytes_per_s(gpus[0], gpus[1])
        } else {
            let a = gpus[0];
            let b = *gpus.iter().find(|g| *g / c.gpus_per_node != a / c.gpus_per_node).unwrap_or(&a);
            c.widest_path_search_gbytes_per_s(a, b)
        }
    }

    mod closed_form {
        use super::*;
        use proptest::prelude::*;

        /// Link bandwidths from a short list (ties are common, and a NIC may be faster than NVLink) or any value
        /// validation accepts.
        fn bandwidth(list: &'static [f64]) -> impl Strategy<Value = f64> {
            prop_oneof![3 => proptest::sample::select(list), 1 => 0.1f64..100_000.0]
        }

        fn gpu_type() -> impl Strategy<Value = GpuSpec> {
            (bandwidth(&[50.0, 100.0, 200.0, 450.0, 900.0]), bandwidth(&[100.0, 200.0, 400.0, 1600.0, 3200.0]))
                .prop_map(|(nvlink, network)| spec("random", nvlink, network))
        }

        /// (count, tp, tags, its own GPU type or the cluster's)
        type Group = (u32, u32, u8, Option<GpuSpec>);

        fn layout() -> impl Strategy<Value = (GpuSpec, u32, u32, Vec<Group>)> {
            (gpu_type(), 1u32..6, 1u32..9).prop_flat_map(|(gpu, nodes, per_node)| {
                let group = (1u32..5, 1u32..=per_node * 2, 0u8..3, proptest::option::of(gpu_type()));
                (Just(gpu), Just(nodes), Just(per_node), proptest::collection::vec(group, 1..5))
            })
        }

        /// The cluster of the longest prefix of `groups` that can be placed (one GPU of the cluster's type if none).
        fn build(gpu: GpuSpec, nodes: u32, per_node: u32, groups: &[Group]) -> Cluster {
            (0..groups.len())
                .rev()
                .find_map(|n| try_build(gpu.clone(), nodes, per_node, &groups[..=n]))
                .unwrap_or_else(|| try_build(gpu, nodes, per_node, &[(1, 1, 2, None)]).unwrap())
        }

        fn try_build(gpu: GpuSpec, nodes: u32, per_node: u32, groups: &[Group]) -> Option<Cluster> {
            let specs: Vec<WorkerGroupSpec> = groups
                .iter()
                .enumerate()
                .map(|(i, (count, tp, tags, gpu))| {
                    let tags: &[&str] = match tags {
                        0 => &["rollout"],
                        1 => &["train"],
                        _ => &["rollout", "train"],
                    };
                    WorkerGroupSpec { gpu: gpu.clone(), ..group(&format!("g{i}-"), *count, *tp, tags) }
                })
                .collect();
            Cluster::build(gpu, nodes, per_node, &specs).ok()
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// Closed form == widest-path search, bit for bit: every GPU pair, and copies and rings over random
            /// sets of workers (heterogeneous GPU types, idle GPUs, workers of every size).
            #[test]
            fn equals_the_search(
                (gpu, nodes, per_node, groups) in layout(),
                picks in proptest::collection::vec((any::<u64>(), any::<u64>()), 1..6),
            ) {
                let c = build(gpu, nodes, per_node, &groups);
                for a in 0..c.total_gpus() {
                    for b in 0..c.total_gpus() {
                        let (fast, slow) = (c.path_gbytes_per_s(a, b), c.widest_path_search_gbytes_per_s(a, b));
                        prop_assert_eq!(fast.to_bits(), slow.to_bits(), "GPUs {} -> {}: {} vs {}", a, b, fast, slow);
                    }
                }
                let n = c.workers.len();
                let subset = |bits: u64| -> Vec<WorkerId> {
                    (0..n).filter(|i| bits >> (i % 64) & 1 == 1).map(|i| WorkerId(i as u32)).collect()
                };
                for (from_bits, to_bits) in picks {
                    let (from, to) = (subset(from_bits), subset(to_bits));
                    let (fast, slow) = (c.copy_gbytes_per_s(&from, &to), copy_by_search(&c, &from, &to));
                    prop_assert_eq!(fast.to_bits(), slow.to_bits(), "copy {:?} -> {:?}: {} vs {}", from, to, fast, slow);
                    for w in &to {
                        let one = c.copy_sources(&from).gbytes_per_s_into(&[*w]);
                        prop_assert_eq!(one.to_bits(), copy_by_search(&c, &from, &[*w]).to_bits());
                    }
                    let (fast, slow) = (c.ring_gbytes_per_s(&from), ring_by_search(&c, &from));
                    prop_assert_eq!(fast.to_bits(), slow.to_bits(), "ring {:?}: {} vs {}", from, fast, slow);
                }
            }
        }
    }
}
