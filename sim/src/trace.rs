//! Workload traces: rlsim's CSV format (one row per sample) and an importer for PolyTrace's JSONL.
//!
//! CSV columns, in any order, all required: `step` (RL step in the recorded run, ≥ 0), `group` (prompt group
//! within the step, ≥ 0), `prompt_tokens` (≥ 1, equal for every row of a group), `response_tokens` (≥ 1).
//! Unknown columns are rejected so that a typo never silently drops data.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One prompt group of a trace: a prompt and the lengths of its sampled responses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceGroup {
    pub prompt_tokens: u32,
    pub responses: Vec<u32>,
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

#[derive(Deserialize)]
struct CsvRow {
    step: u32,
    group: u32,
    prompt_tokens: u32,
    response_tokens: u32,
}

/// Reads a trace in rlsim's CSV format.
pub fn read_csv_trace(path: &Path) -> Result<Trace, TraceError> {
    let file = path.to_path_buf();
    let text = std::fs::read_to_string(path).map_err(|source| TraceError::Io { file: file.clone(), source })?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| TraceError::Field { file: file.clone(), line: 1, field: "header".into(), message: e.to_string() })?
        .clone();
    for h in headers.iter() {
        if !CSV_COLUMNS.contains(&h) {
            return Err(TraceError::Field {
                file,
                line: 1,
                field: h.to_string(),
                message: format!("unknown column; expected the columns {}", CSV_COLUMNS.join(", ")),
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
        let g = groups
            .entry((row.step, row.group))
            .or_insert(TraceGroup { prompt_tokens: row.prompt_tokens, responses: vec![] });
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
    w.write_record(CSV_COLUMNS).map_err(|e| io(e.into()))?;
    for (s, step) in trace.steps.iter().enumerate() {
        for (g, group) in step.iter().enumerate() {
            for r in &group.responses {
                w.write_record([s.to_string(), g.to_string(), group.prompt_tokens.to_string(), r.to_string()])
                    .map_err(|e| io(e.into()))?;
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
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let entries = std::fs::read_dir(input).map_err(|source| TraceError::Io { file: input.clone(), source })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("packed_lengths_step_") && n.ends_with(".jsonl"))
                })
                .collect();
            if found.is_empty() {
                return Err(TraceError::File {
                    file: input.clone(),
                    message: "no packed_lengths_step_*.jsonl files in this folder".into(),
                });
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    let mut steps: BTreeMap<u32, Vec<TraceGroup>> = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| TraceError::Io { file: file.clone(), source })?;
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
            steps.entry(row.step).or_default().push(TraceGroup { prompt_tokens: row.input, responses: row.output });
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

/// One PolyTrace line, checked field by field so that an error names the field.
fn parse_polytrace_line(line: &str) -> Result<PolyTraceLine, (&'static str, String)> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| ("line", format!("not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or(("line", "expected a JSON object".to_string()))?;
    let int = |name: &'static str| -> Result<u32, (&'static str, String)> {
        let x = obj.get(name).ok_or((name, "missing; expected a non-negative integer".to_string()))?;
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or((name, format!("expected a non-negative integer, got {x}")))
    };
    let step = int("step")?;
    let input = int("input")?;
    let out = obj.get("output").ok_or(("output", "missing; expected an array of response lengths".to_string()))?;
    let output = out
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok())).collect::<Option<Vec<u32>>>())
        .ok_or(("output", format!("expected an array of non-negative integers, got {out}")))?;
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
    fn csv_round_trips_and_groups_rows() {
        let d = tmpdir("rt");
        let p = write(&d, "t.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,5\n0,0,10,7\n0,1,20,3\n1,0,4,9\n");
        let t = read_csv_trace(&p).unwrap();
        assert_eq!(t.steps.len(), 2);
        assert_eq!(t.steps[0][0], TraceGroup { prompt_tokens: 10, responses: vec![5, 7] });
        assert_eq!(t.samples(), 4);
        let out = d.join("o.csv");
        write_csv_trace(&t, &out).unwrap();
        assert_eq!(read_csv_trace(&out).unwrap().steps, t.steps);
    }

    #[test]
    fn bad_csv_names_line_and_field() {
        let d = tmpdir("bad");
        let p = write(&d, "a.csv", "step,group,prompt_tokens,response_tokens\n0,0,10,5\n0,0,10,x\n");
        let e = read_csv_trace(&p).unwrap_err().to_string();
        assert!(e.contains("a.csv:3: field `response_tokens`"), "{e}");
        let p = write(&d, "b.csv", "step,group,prompt_tokens,response_tokens,turns\n0,0,1,1,2\n");
        let e = read_csv_trace(&p).unwrap_err().to_string();
        assert!(e.contains("b.csv:1: field `turns`: unknown column"), "{e}");
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
        assert_eq!(t.steps[1][0], TraceGroup { prompt_tokens: 7, responses: vec![1, 2] });
        let bad = write(&d, "packed_lengths_step_9.jsonl", "{\"step\":9,\"input\":\"x\",\"output\":[1]}\n");
        let e = read_polytrace(&[bad]).unwrap_err().to_string();
        assert!(e.contains("packed_lengths_step_9.jsonl:1: field `input`"), "{e}");
    }
}
