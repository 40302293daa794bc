//! Workload traces: rlsim's CSV format (one row per sample) and an importer for PolyTrace's JSONL.
//!
//! CSV columns, in any order: `step` (RL step in the recorded run, ≥ 0), `group` (prompt group within the step,
//! ≥ 0), `prompt_tokens` (≥ 1, equal for every row of a group), `response_tokens` (≥ 1), all required; and the
//! optional `turns` for multi-turn agents: `tokens/tool_latency_s/tool_tokens` per turn that ends in a tool call,
//! `;`-separated, then the last turn's `tokens` (e.g. `40/0.074/1044;131`); the turns' tokens add up to
//! `response_tokens`, and an empty cell is one turn. Unknown columns are rejected so that a typo never silently
//! drops data. Importers: PolyTrace `packed_lengths_step_*.jsonl` and Search-R1 `multiturn_workload_step_*.jsonl`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One turn of a multi-turn trajectory: tokens generated, then (unless it is the last) a tool call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Turn {
    /// Tokens the model generates in this turn.
    pub tokens: u32,
    /// Tool/environment latency after it, nanoseconds (0 for the last turn).
    pub tool_ns: u64,
    /// Tokens the tool's output (plus chat template) adds to the context before the next turn.
    pub tool_tokens: u32,
}

/// One prompt group of a trace: a prompt and the lengths of its sampled responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceGroup {
    pub prompt_tokens: u32,
    pub responses: Vec<u32>,
    /// Per response, its turns (empty: a single-turn trace).
    pub turns: Vec<Vec<Turn>>,
}

/// Parses a `turns` cell; the turns must add up to `response_tokens`.
pub fn parse_turns(cell: &str, response_tokens: u32) -> Result<Vec<Turn>, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(vec![Turn { tokens: response_tokens, tool_ns: 0, tool_tokens: 0 }]);
    }
    let parts: Vec<&str> = cell.split(';').collect();
    let mut turns = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let fields: Vec<&str> = part.split('/').map(str::trim).collect();
        let last = i + 1 == parts.len();
        let bad = || {
            format!(
                "turn {} is {part:?}; expected tokens/tool_latency_s/tool_tokens for a turn that calls a tool, and tokens for the last",
                i + 1
            )
        };
        let tokens: u32 = fields[0].parse().map_err(|_| bad())?;
        if tokens == 0 && last {
            return Err(format!("turn {} generates 0 tokens; the last turn must generate at least 1", i + 1));
        }
        let (tool_ns, tool_tokens) = match (last, fields.len()) {
            (true, 1) => (0, 0),
            (false, 3) => {
                let s: f64 = fields[1].parse().map_err(|_| bad())?;
                if !s.is_finite() || s < 0.0 {
                    return Err(bad());
                }
                (crate::time::secs_to_ns(s), fields[2].parse().map_err(|_| bad())?)
            }
            _ => return Err(bad()),
        };
        turns.push(Turn { tokens, tool_ns, tool_tokens });
    }
    let sum: u64 = turns.iter().map(|t| t.tokens as u64).sum();
    if sum != response_tokens as u64 {
        return Err(format!("the turns generate {sum} tokens but response_tokens is {response_tokens}"));
    }
    Ok(turns)
}

/// Writes turns as a `turns` cell.
pub fn format_turns(turns: &[Turn]) -> String {
    let n = turns.len();
    turns
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i + 1 == n {
                t.tokens.to_string()
            } else {
                format!("{}/{}/{}", t.tokens, t.tool_ns as f64 / 1e9, t.tool_tokens)
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// A loaded trace: steps in ascending order, each with its groups in ascending group order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    pub path: PathBuf,
    pub steps: Vec<Vec<TraceGroup>>,
}

impl Trace {
    pub fn samples(&self) -> usize {
        self.steps.iter().flatten().map(|g| g.responses.len()).sum()
    }

    /// Whether any sample has more than one turn.
    pub fn is_multi_turn(&self) -> bool {
        self.steps.iter().flatten().any(|g| g.turns.iter().any(|t| t.len() > 1))
    }
}

/// A trace file that could not be read; always names the file, and the line and field where it applies.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{file}: cannot read trace: {source}")]
    Io { file: PathBuf, source: std::io::Error },
    #[error("{file}:{line}: field `{field}`: {message}")]
    Field { file: PathBuf, line: u64, field: String, message: String },
    #[error("{file}: {message}")]
    File { file: PathBuf, message: String },
}

const CSV_COLUMNS: [&str; 4] = ["step", "group", "prompt_tokens", "response_tokens"];
const OPTIONAL_COLUMNS: [&str; 1] = ["turns"];

#[derive(Deserialize)]
struct CsvRow {
    step: u32,
    group: u32,
    prompt_tokens: u32,
    response_tokens: u32,
    #[serde(default)]
    turns: Option<String>,
}

/// Largest trace file read (1 GiB): a bigger one is refused rather than read whole into memory.
pub const MAX_TRACE_BYTES: u64 = 1 << 30;

/// Reads a trace file whole: only a regular file (not a device such as `/dev/zero`, a FIFO or a folder) of at most
/// `MAX_TRACE_BYTES`.
fn read_trace_text(path: &Path) -> Result<String, TraceError> {
    use crate::textfile::{read_regular_text, ReadError};
    read_regular_text(path, MAX_TRACE_BYTES).map_err(|e| match e {
        ReadError::Io(source) => TraceError::Io { file: path.to_path_buf(), source },
        ReadError::NotRegular => TraceError::File {
            file: path.to_path_buf(),
            message: "not a regular file; a trace is a CSV or JSONL file (devices, pipes and folders are refused)"
                .into(),
        },
        ReadError::TooBig { len, .. } => TraceError::File {
            file: path.to_path_buf(),
            message: format!(
                "{len} bytes is more than the {MAX_TRACE_BYTES} bytes (1 GiB) a trace may have; keep a subset of its steps"
            ),
        },
    })
}

/// At most the first 80 characters of text read from a file, for a message (a file that is not a trace is not
/// echoed).
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Traces parsed lately, by path and whole text: `search`, `sweep` and `compare` load one scenario many times, and
/// parsing its CSV was about a quarter of a search's CPU. Keyed by the text (read again each time), so an edited file
/// is parsed anew; errors are not kept.
static PARSED: Mutex<Vec<(PathBuf, String, Arc<Trace>)>> = Mutex::new(Vec::new());
/// Traces kept, and the largest text kept (a huge trace is parsed each time rather than held twice).
const PARSED_KEEP: usize = 4;
const PARSED_MAX_BYTES: usize = 64 << 20;

/// Reads a trace in rlsim's CSV format.
pub fn read_csv_trace(path: &Path) -> Result<Trace, TraceError> {
    let text = read_trace_text(path)?;
    let hit = PARSED.lock().ok().and_then(|kept| {
        kept.iter().find(|(p, t, _)| p.as_path() == path && *t == text).map(|(_, _, trace)| Arc::clone(trace))
    });
    if let Some(trace) = hit {
        return Ok(Trace::clone(&trace));
    }
    let trace = parse_csv_trace(path, &text)?;
    if text.len() <= PARSED_MAX_BYTES {
        if let Ok(mut kept) = PARSED.lock() {
            if kept.len() >= PARSED_KEEP {
                kept.remove(0);
            }
            kept.push((path.to_path_buf(), text, Arc::new(trace.clone())));
        }
    }
    Ok(trace)
}

fn parse_csv_trace(path: &Path, text: &str) -> Result<Trace, TraceError> {
    let file = path.to_path_buf();
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| TraceError::Field { file: file.clone(), line: 1, field: "header".into(), message: e.to_string() })?
        .clone();
    for h in headers.iter() {
        if !CSV_COLUMNS.contains(&h) && !OPTIONAL_COLUMNS.contains(&h) {
            return Err(TraceError::Field {
                file,
                line: 1,
                field: excerpt(h),
                message: format!(
                    "unknown column; expected the columns {} (and optionally {})",
                    CSV_COLUMNS.join(", "),
                    OPTIONAL_COLUMNS.join(", ")
                ),
            });
        }
    }
    for c in CSV_COLUMNS {
        if !headers.iter().any(|h| h == c) {
            return Err(TraceError::Field {
                file,
                line: 1,
                field: c.to_string(),
                message: format!("missing column; the header must name {}", CSV_COLUMNS.join(", ")),
            });
        }
    }
    let mut groups: BTreeMap<(u32, u32), TraceGroup> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            TraceError::Field { file: file.clone(), line, field: "row".into(), message: e.to_string() }
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let row: CsvRow = record.deserialize(Some(&headers)).map_err(|e| {
            let field = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => err.field().and_then(|i| headers.get(i as usize)),
                _ => None,
            };
            TraceError::Field {
                file: file.clone(),
                line,
                field: field.unwrap_or("row").to_string(),
                message: format!("expected a non-negative integer: {e}"),
            }
        })?;
        for (name, value) in [("prompt_tokens", row.prompt_tokens), ("response_tokens", row.response_tokens)] {
            if value == 0 {
                return Err(TraceError::Field {
                    file,
                    line,
                    field: name.into(),
                    message: "must be at least 1, got 0".into(),
                });
            }
        }
        let turns = match &row.turns {
            Some(cell) => parse_turns(cell, row.response_tokens).map_err(|message| TraceError::Field {
                file: file.clone(),
                line,
                field: "turns".into(),
                message,
            })?,
            None => Vec::new(),
        };
        let g = groups.entry((row.step, row.group)).or_insert(TraceGroup {
            prompt_tokens: row.prompt_tokens,
            responses: vec![],
            turns: vec![],
        });
        if g.prompt_tokens != row.prompt_tokens {
            return Err(TraceError::Field {
                file,
                line,
                field: "prompt_tokens".into(),
                message: format!(
                    "{} differs from {} given earlier for step {} group {} (all samples of a group share one prompt)",
                    row.prompt_tokens, g.prompt_tokens, row.step, row.group
                ),
            });
        }
        g.responses.push(row.response_tokens);
        if !turns.is_empty() {
            g.turns.resize(g.responses.len() - 1, Vec::new());
            g.turns.push(turns);
        }
    }
    // A group with some multi-turn rows: the others are single-turn.
    for g in groups.values_mut().filter(|g| !g.turns.is_empty()) {
        let singles: Vec<u32> = g.responses[g.turns.len()..].to_vec();
        g.turns.extend(singles.into_iter().map(|r| vec![Turn { tokens: r, tool_ns: 0, tool_tokens: 0 }]));
        for (i, t) in g.turns.iter_mut().enumerate() {
            if t.is_empty() {
                *t = vec![Turn { tokens: g.responses[i], tool_ns: 0, tool_tokens: 0 }];
            }
        }
    }
    if groups.is_empty() {
        return Err(TraceError::File { file, message: "the trace has a header but no rows".into() });
    }
    let mut steps: Vec<Vec<TraceGroup>> = Vec::new();
    let mut last_step = None;
    for ((step, _), g) in groups {
        if last_step != Some(step) {
            steps.push(Vec::new());
            last_step = Some(step);
        }
        steps.last_mut().expect("pushed above").push(g);
    }
    Ok(Trace { path: file, steps })
}

/// Writes a trace in rlsim's CSV format (steps and groups renumbered from 0).
pub fn write_csv_trace(trace: &Trace, out: &Path) -> Result<(), TraceError> {
    let io = |e: std::io::Error| TraceError::Io { file: out.to_path_buf(), source: e };
    let mut w = csv::Writer::from_path(out).map_err(|e| io(e.into()))?;
    let multi = trace.is_multi_turn();
    let mut header = CSV_COLUMNS.to_vec();
    if multi {
        header.push("turns");
    }
    w.write_record(&header).map_err(|e| io(e.into()))?;
    for (s, step) in trace.steps.iter().enumerate() {
        for (g, group) in step.iter().enumerate() {
            for (i, r) in group.responses.iter().enumerate() {
                let mut row = vec![s.to_string(), g.to_string(), group.prompt_tokens.to_string(), r.to_string()];
                if multi {
                    row.push(group.turns.get(i).map(|t| format_turns(t)).unwrap_or_default());
                }
                w.write_record(&row).map_err(|e| io(e.into()))?;
            }
        }
    }
    w.flush().map_err(io)
}

struct PolyTraceLine {
    step: u32,
    input: u32,
    output: Vec<u32>,
}

/// Reads PolyTrace `packed_lengths_step_N.jsonl` files (one line per prompt group: `input` prompt tokens,
/// `output` the response tokens of its samples). `inputs` are files or folders (every matching file in a folder);
/// steps are ordered by the `step` field, groups by their order in the files.
pub fn read_polytrace(inputs: &[PathBuf]) -> Result<Trace, TraceError> {
    let files = jsonl_files(inputs, "packed_lengths_step_")?;
    let mut steps: BTreeMap<u32, Vec<TraceGroup>> = BTreeMap::new();
    for file in files {
        let text = read_trace_text(&file)?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let line_no = i as u64 + 1;
            let row = parse_polytrace_line(line).map_err(|(field, message)| TraceError::Field {
                file: file.clone(),
                line: line_no,
                field: field.into(),
                message,
            })?;
            if row.output.is_empty() || row.output.contains(&0) || row.input == 0 {
                return Err(TraceError::Field {
                    file: file.clone(),
                    line: line_no,
                    field: if row.input == 0 { "input".into() } else { "output".into() },
                    message: "every prompt and response needs at least 1 token".into(),
                });
            }
            steps.entry(row.step).or_default().push(TraceGroup {
                prompt_tokens: row.input,
                responses: row.output,
                turns: Vec::new(),
            });
        }
    }
    if steps.is_empty() {
        return Err(TraceError::File {
            file: inputs.first().cloned().unwrap_or_default(),
            message: "no samples found".into(),
        });
    }
    Ok(Trace { path: inputs.first().cloned().unwrap_or_default(), steps: steps.into_values().collect() })
}

/// Files named `{prefix}*.jsonl` among `inputs` (files, or folders searched one level deep), sorted per folder.
fn jsonl_files(inputs: &[PathBuf], prefix: &str) -> Result<Vec<PathBuf>, TraceError> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let entries = std::fs::read_dir(input).map_err(|source| TraceError::Io { file: input.clone(), source })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".jsonl"))
                })
                .collect();
            if found.is_empty() {
                return Err(TraceError::File {
                    file: input.clone(),
                    message: format!("no {prefix}*.jsonl files in this folder"),
                });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    Ok(files)
}

/// Whether these inputs are Search-R1 multi-turn files (by name) rather than PolyTrace packed lengths.
pub fn looks_like_search_r1(inputs: &[PathBuf]) -> bool {
    inputs.iter().any(|p| {
        let has = |p: &Path| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("multiturn_workload_step_"))
        };
        if p.is_dir() {
            std::fs::read_dir(p).map(|mut d| d.any(|e| e.is_ok_and(|e| has(&e.path())))).unwrap_or(false)
        } else {
            has(p)
        }
    })
}

/// Reads Search-R1 `multiturn_workload_step_N.jsonl` files (PolyTrace's search-multiturn): one line per trajectory
/// with `prompt_len`, `turns[]` (`completion_tokens`, `prompt_tokens`, `total_len_after`), `tool_calls[]` (`turn`,
/// `latency_s`) and `prompt_group_id`. Turn k's tool latency is the sum of its tool calls' latencies; the tokens the
/// tool adds are the next turn's `prompt_tokens` minus this turn's `total_len_after` (tool output plus template).
pub fn read_search_r1(inputs: &[PathBuf]) -> Result<Trace, TraceError> {
    let files = jsonl_files(inputs, "multiturn_workload_step_")?;
    // (step, group id) → (prompt, [(response tokens, turns)])
    type Samples = Vec<(u32, Vec<Turn>)>;
    let mut groups: BTreeMap<(u32, u64), (u32, Samples)> = BTreeMap::new();
    for file in files {
        let text = read_trace_text(&file)?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = |field: &str, message: String| TraceError::Field {
                file: file.clone(),
                line: i as u64 + 1,
                field: field.to_string(),
                message,
            };
            let v: serde_json::Value =
                serde_json::from_str(line).map_err(|e| at("line", format!("not valid JSON: {e}")))?;
            let int = |o: &serde_json::Value, name: &str, field: &str| -> Result<u64, TraceError> {
                o.get(name)
                    .and_then(|x| x.as_u64())
                    .ok_or_else(|| at(field, "missing or not a non-negative integer".into()))
            };
            // Token counts and steps are u32 everywhere else: a larger value is an error, not a silent wrap.
            let int32 = |o: &serde_json::Value, name: &str, field: &str| -> Result<u32, TraceError> {
                let n = int(o, name, field)?;
                u32::try_from(n).map_err(|_| at(field, format!("{n} is too large (at most {})", u32::MAX)))
            };
            let step = int32(&v, "step", "step")?;
            let prompt = int32(&v, "prompt_len", "prompt_len")?;
            let group = int(&v, "prompt_group_id", "prompt_group_id")?;
            let turns_json = v
                .get("turns")
                .and_then(|t| t.as_array())
                .ok_or_else(|| at("turns", "missing; expected an array".into()))?;
            if turns_json.is_empty() {
                return Err(at("turns", "empty; a trajectory has at least one turn".into()));
            }
            let calls = v.get("tool_calls").and_then(|t| t.as_array()).cloned().unwrap_or_default();
            let mut turns = Vec::with_capacity(turns_json.len());
            for (k, t) in turns_json.iter().enumerate() {
                let field = format!("turns[{k}]");
                let tokens = int32(t, "completion_tokens", &format!("{field}.completion_tokens"))?;
                let last = k + 1 == turns_json.len();
                let (tool_ns, tool_tokens) = if last {
                    (0, 0)
                } else {
                    let after = int(t, "total_len_after", &format!("{field}.total_len_after"))?;
                    let next = int(&turns_json[k + 1], "prompt_tokens", &format!("turns[{}].prompt_tokens", k + 1))?;
                    let latency: f64 = calls
                        .iter()
                        .filter(|c| c.get("turn").and_then(|x| x.as_u64()) == Some(k as u64))
                        .filter_map(|c| c.get("latency_s").and_then(|x| x.as_f64()))
                        .sum();
                    let added = next.saturating_sub(after);
                    let tool_tokens = u32::try_from(added).map_err(|_| {
                        at(
                            &format!("turns[{}].prompt_tokens", k + 1),
                            format!("the tool adds {added} tokens; too many"),
                        )
                    })?;
                    (crate::time::secs_to_ns(latency.max(0.0)), tool_tokens)
                };
                turns.push(Turn { tokens, tool_ns, tool_tokens });
            }
            let total = turns.iter().map(|t| u64::from(t.tokens)).sum::<u64>();
            let total = u32::try_from(total).map_err(|_| {
                at("turns", format!("the turns generate {total} tokens in all; at most {} are supported", u32::MAX))
            })?;
            if total == 0 || prompt == 0 {
                return Err(at("turns", "the trajectory generates no token (or has an empty prompt)".into()));
            }
            // Turns that generate nothing fold into the previous tool call (as the workload does).
            let turns = crate::workload::fit_turns(&turns, total);
            let e = groups.entry((step, group)).or_insert((prompt, Vec::new()));
            e.1.push((total, turns));
        }
    }
    if groups.is_empty() {
        return Err(TraceError::File {
            file: inputs.first().cloned().unwrap_or_default(),
            message: "no trajectories found".into(),
        });
    }
    let mut steps: BTreeMap<u32, Vec<TraceGroup>> = BTreeMap::new();
    for ((step, _), (prompt, samples)) in groups {
        let (responses, turns) = samples.into_iter().unzip();
        steps.entry(step).or_default().push(TraceGroup { prompt_tokens: prompt, responses, turns });
    }
    Ok(Trace { path: inputs.first().cloned().unwrap_or_default(), steps: steps.into_values().collect() })
}

/// One PolyTrace line, checked field by field so that an error names the field.
fn parse_polytrace_line(line: &str) -> Result<PolyTraceLine, (&'static str, String)> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| ("line", format!("not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or(("line", "expected a JSON object".to_string()))?;
    let int = |name: &'static str| -> Result<u32, (&'static str, String)> {
        let x = obj.get(name).ok_or((name, "missing; expected a non-negative integer".to_string()))?;
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| (name, format!("expected a non-negative integer, got {}", excerpt(&x.to_string()))))
    };
    let step = int("step")?;
    let input = int("input")?;
    let out = obj.get("output").ok_or(("output", "missing; expected an array of response lengths".to_string()))?;
    let output = out
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok())).collect::<Option<Vec<u32>>>())
        .ok_or_else(|| {
            ("output", format!("expected an array of non-negative integers, got {}", excerpt(&out.to_string())))
        })?;
    Ok(PolyTraceLine { step, input, output })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rlsim-trace-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn trace_files_larger_than_1_gib_or_not_regular_are_refused_unread() {
        let d = tmpdir("huge");
        // A sparse file: its size says 1 GiB + 1 byte, nothing is written or read.
        let huge = d.join("huge.csv");
        std::fs::File::create(&huge).unwrap().set_len(MAX_TRACE_BYTES + 1).unwrap();
        let e = read_csv_trace(&huge).unwrap_err().to_string();
        assert!(
            e.contains("huge.csv: 1073741825 bytes is more than the 1073741824 bytes (1 GiB) a trace may have"),
            "{e}"
        );
        let e = read_csv_trace(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero: not a regular file"), "{e}");
        // The JSONL readers share the guard.
        let poly = d.join("packed_lengths_step_0.jsonl");
        std::fs::File::create(&poly).unwrap().set_len(MAX_TRACE_BYTES + 1).unwrap();
        let e = read_polytrace(std::slice::from_ref(&poly)).unwrap_err().to_string();
        assert!(e.contains("(1 GiB) a trace may have"), "{e}");
        let sr1 = d.join("multiturn_workload_step_0.jsonl");
        std::fs::File::create(&sr1).unwrap().set_len(MAX_TRACE_BYTES + 1).unwrap();
        let e = read_search_r1(std::slice::from_ref(&sr1)).unwrap_err().to_string();
        assert!(e.contains("(1 GiB) a trace may have"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_that_is_not_a_trace_is_echoed_at_most_80_characters() {
        let d = tmpdir("not-a-trace");
        let line = format!("{}SECRET", "y".repeat(100));
        let e = read_csv_trace(&write(&d, "passwd", &format!("{line}\n"))).unwrap_err().to_string();
        assert!(e.contains(&format!("field `{}…`: unknown column", "y".repeat(80))), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
        let json = format!("{{\"step\":0,\"input\":3,\"output\":\"{line}\"}}\n");
        let e = read_polytrace(&[write(&d, "packed_lengths_step_0.jsonl", &json)]).unwrap_err().to_string();
        assert!(e.contains("field `output`") && !e.contains("SECRET"), "{e}");
    }

    #[test]
    fn csv_round_trips_and_groups_rows() {
        let d = tmpdir("rt");
        let p = write(&d, "t.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,5\n0,0,10,7\n0,1,20,3\n1,0,4,9\n");
        let t = read_csv_trace(&p).unwrap();
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0][0], TraceGroup { prompt_tokens: 10, responses: vec![5, 7], turns: vec![] });
        assert_eq!(t.samples(), 4);
        let out = d.join("o.csv");
        write_csv_trace(&t, &out).unwrap();
        assert_eq!(read_csv_trace(&out).unwrap().steps, t.steps);
    }

    #[test]
    fn a_kept_trace_is_the_parsed_one_and_an_edited_file_is_parsed_anew() {
        let d = tmpdir("kept");
        let p = write(&d, "t.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,5\n");
        let first = read_csv_trace(&p).unwrap();
        assert_eq!(read_csv_trace(&p).unwrap(), first);
        write(&d, "t.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,6\n");
        assert_eq!(read_csv_trace(&p).unwrap().steps[0][0].responses, vec![6]);
        write(&d, "t.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,x\n");
        assert!(read_csv_trace(&p).is_err(), "an error is never served from the kept traces");
    }

    #[test]
    fn bad_csv_names_line_and_field() {
        let d = tmpdir("bad");
        let p = write(&d, "a.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,5\n0,0,10,x\n");
        let e = read_csv_trace(&p).unwrap_err().to_string();
        assert!(e.contains("a.csv:3: field `response_tokens`"), "{e}");
        let p = write(&d, "b.csv", "step,group,prompt_tokens,response_tokens,turn\n0,0,1,1,2\n");
        let e = read_csv_trace(&p).unwrap_err().to_string();
        assert!(e.contains("b.csv:1: field `turn`: unknown column"), "{e}");
        let p = write(&d, "t.csv", "step,group,prompt_tokens,response_tokens,turns\n0,0,1,10,4/0.5/7;5\n");
        let e = read_csv_trace(&p).unwrap_err().to_string();
        assert!(e.contains("t.csv:2: field `turns`: the turns generate 9 tokens but response_tokens is 10"), "{e}");
        let p = write(&d, "c.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,5\n0,0,11,5\n");
        let e = read_csv_trace(&p).unwrap_err().to_string();
        assert!(e.contains("c.csv:3: field `prompt_tokens`"), "{e}");
        let p = write(&d, "d.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,0\n");
        assert!(read_csv_trace(&p).unwrap_err().to_string().contains("must be at least 1"));
        let e = read_csv_trace(&d.join("missing.csv")).unwrap_err().to_string();
        assert!(e.contains("missing.csv: cannot read trace"), "{e}");
        let p = write(&d, "e.csv", "step,group,prompt_tokens\n0,0,10\n");
        assert!(read_csv_trace(&p).unwrap_err().to_string().contains("field `response_tokens`: missing column"));
    }

    #[test]
    fn multi_turn_cells_round_trip() {
        let d = tmpdir("turns");
        let p = write(&d, "m.csv", "step,group,prompt_tokens,response_tokens,turns\n0,0,10,9,4/0.5/7;5\n0,0,10,3,\n");
        let t = read_csv_trace(&p).unwrap();
        let g = &t.steps[0][0];
        assert_eq!(
            g.turns[0],
            vec![
                Turn { tokens: 4, tool_ns: 500_000_000, tool_tokens: 7 },
                Turn { tokens: 5, tool_ns: 0, tool_tokens: 0 }
            ]
        );
        assert_eq!(g.turns[1], vec![Turn { tokens: 3, tool_ns: 0, tool_tokens: 0 }]);
        assert!(t.is_multi_turn());
        let out = d.join("m2.csv");
        write_csv_trace(&t, &out).unwrap();
        assert_eq!(read_csv_trace(&out).unwrap().steps, t.steps);
    }

    #[test]
    fn search_r1_lines_become_multi_turn_groups() {
        let d = tmpdir("sr1");
        let line = r#"{"step":0,"prompt_len":317,"prompt_group_id":3,"turns":[{"prompt_tokens":317,"completion_tokens":40,"total_len_after":357},{"prompt_tokens":1401,"completion_tokens":131,"total_len_after":1533}],"tool_calls":[{"turn":0,"latency_s":0.25}]}"#;
        let p = write(&d, "multiturn_workload_step_0.jsonl", &format!("{line}\n{line}\n"));
        assert!(looks_like_search_r1(std::slice::from_ref(&d)));
        let t = read_search_r1(&[p]).unwrap();
        let g = &t.steps[0][0];
        assert_eq!((g.prompt_tokens, g.responses.clone()), (317, vec![171, 171]));
        assert_eq!(g.turns[0][0], Turn { tokens: 40, tool_ns: 250_000_000, tool_tokens: 1401 - 357 });
        let bad = write(&d, "multiturn_workload_step_1.jsonl", "{\"step\":1,\"prompt_len\":5,\"prompt_group_id\":0}\n");
        let e = read_search_r1(&[bad]).unwrap_err().to_string();
        assert!(e.contains("multiturn_workload_step_1.jsonl:1: field `turns`"), "{e}");
    }

    #[test]
    fn polytrace_lines_become_groups() {
        let d = tmpdir("poly");
        write(&d, "packed_lengths_step_1.jsonl", "{\"step\":1,\"rank\":0,\"input\":7,\"output\":[1,2]}\n");
        write(
            &d,
            "packed_lengths_step_0.jsonl",
            "{\"step\":0,\"rank\":0,\"input\":5,\"output\":[3,4,5]}\n{\"step\":0,\"input\":6,\"output\":[9]}\n",
        );
        let t = read_polytrace(std::slice::from_ref(&d)).unwrap();
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0].len(), 2);
        assert_eq!(t.steps[1][0], TraceGroup { prompt_tokens: 7, responses: vec![1, 2], turns: vec![] });
        let bad = write(&d, "packed_lengths_step_9.jsonl", "{\"step\":9,\"input\":\"x\",\"output\":[1]}\n");
        let e = read_polytrace(&[bad]).unwrap_err().to_string();
        assert!(e.contains("packed_lengths_step_9.jsonl:1: field `input`"), "{e}");
    }
}
