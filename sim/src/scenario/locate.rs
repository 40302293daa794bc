//! Locating fields in the scenario text, and the scenario's error type.

use std::path::{Path, PathBuf};

/// A scenario that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{}: cannot read scenario: {source}", file.display())]
    Io { file: PathBuf, source: std::io::Error },
    #[error("{}", format_field_error(file, *location, field, message))]
    Field { file: PathBuf, location: Option<(usize, usize)>, field: String, message: String },
    #[error("--set {assignment}: {message}")]
    Override { assignment: String, message: String },
}

/// The field name syntax errors carry (they are about the text, not a field).
pub const SYNTAX: &str = "(syntax)";

pub(crate) fn format_field_error(file: &Path, location: Option<(usize, usize)>, field: &str, message: &str) -> String {
    let place = match location {
        Some((line, col)) => format!("{}:{line}:{col}", file.display()),
        None => file.display().to_string(),
    };
    if field == SYNTAX {
        format!("{place}: TOML syntax error: {message}")
    } else {
        format!("{place}: field `{field}`: {message}")
    }
}

/// The text a scenario was read from, for locating fields.
pub(crate) struct Source<'a> {
    /// The scenario file (relative paths inside it resolve against its folder).
    pub(crate) file: &'a Path,
    /// How errors name it: the file, marked when `--set` overrides changed its text.
    pub(crate) label: PathBuf,
    pub(crate) text: &'a str,
    doc: Option<toml_edit::Document<&'a str>>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str, overridden: bool) -> Self {
        let label = if overridden {
            PathBuf::from(format!("{} (with --set overrides)", file.display()))
        } else {
            file.to_path_buf()
        };
        Source { file, label, text, doc: toml_edit::Document::parse(text).ok() }
    }

    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        (line, col)
    }

    /// The line and column of a dotted field (`a.b[0].c`), or of its nearest ancestor present in the file.
    pub(crate) fn locate(&self, field: &str) -> Option<(usize, usize)> {
        let Some(doc) = self.doc.as_ref() else { return self.locate_by_lines(field) };
        let mut node = Node::Table(doc.as_table());
        let mut span = None;
        for seg in split_path(field) {
            let Some((child, child_span)) = node.child(&seg) else { break };
            span = child_span.or(span);
            node = child;
        }
        span.map(|s| self.line_col(s.start))
    }

    /// Where `toml_edit` cannot parse the text (an integer beyond i64, which `toml` reads as a float): the line
    /// `key = …` under the header `[parent]`, found by reading lines.
    fn locate_by_lines(&self, field: &str) -> Option<(usize, usize)> {
        let (parent, key) = field.rsplit_once('.').unwrap_or(("", field));
        let mut table = String::new();
        let mut offset = 0;
        for line in self.text.split_inclusive('\n') {
            let t = line.trim();
            if let Some(h) = t.strip_prefix('[').and_then(|h| h.split(']').next()) {
                table = h.trim_start_matches('[').trim().to_string();
            } else if table == parent && t.strip_prefix(key).is_some_and(|rest| rest.trim_start().starts_with('=')) {
                return Some(self.line_col(offset + (line.len() - line.trim_start().len())));
            }
            offset += line.len();
        }
        None
    }

    pub(crate) fn error(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Field {
            file: self.label.clone(),
            location: self.locate(field),
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// A place in a parsed TOML document, for walking dotted paths.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a toml_edit::Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

impl<'a> Node<'a> {
    fn child(self, seg: &PathSeg) -> Option<(Node<'a>, Option<std::ops::Range<usize>>)> {
        use toml_edit::{Item, Value};
        match (self, seg) {
            (Node::Item(Item::Table(t)), _) => Node::Table(t).child(seg),
            (Node::Item(Item::Value(v)), _) => Node::Value(v).child(seg),
            (Node::Item(Item::ArrayOfTables(a)), PathSeg::Index(i)) => a.get(*i).map(|t| (Node::Table(t), t.span())),
            (Node::Table(t), PathSeg::Key(k)) => {
                let item = t.get(k)?;
                Some((Node::Item(item), t.key(k).and_then(|k| k.span()).or_else(|| item.span())))
            }
            (Node::Value(Value::InlineTable(t)), PathSeg::Key(k)) => {
                let v = t.get(k)?;
                Some((Node::Value(v), t.key(k).and_then(|k| k.span()).or_else(|| v.span())))
            }
            (Node::Value(Value::Array(a)), PathSeg::Index(i)) => a.get(*i).map(|v| (Node::Value(v), v.span())),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum PathSeg {
    Key(String),
    Index(usize),
}

/// Splits `a.b[0].c` or `a.b.0.c` into segments.
pub(crate) fn split_path(path: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            if open > 0 {
                out.push(PathSeg::Key(rest[..open].to_string()));
            }
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let close = stripped.find(']').unwrap_or(stripped.len());
                if let Ok(i) = stripped[..close].parse() {
                    out.push(PathSeg::Index(i));
                }
                rest = stripped.get(close + 1..).unwrap_or("");
            }
        } else if let Ok(i) = rest.parse::<usize>() {
            out.push(PathSeg::Index(i));
        } else {
            out.push(PathSeg::Key(rest.to_string()));
        }
    }
    out
}

pub(crate) fn syntax_error(file: &Path, text: &str, e: &toml_edit::TomlError) -> ScenarioError {
    let src = Source::new(file, text, false);
    ScenarioError::Field {
        file: file.to_path_buf(),
        location: e.span().map(|s| src.line_col(s.start)),
        field: SYNTAX.into(),
        message: e.message().trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_located_through_tables_arrays_and_inline_tables() {
        let text = "[cluster]\nnodes = 1\n\n[[cluster.workers]]\nname = \"a\"\n\n[[cluster.workers]]\nname = \"b\"\ntp = 4\n\n[workload]\nresponse_tokens = { kind = \"lognormal\", median = 5 }\n";
        let src = Source::new(Path::new("t.toml"), text, false);
        assert_eq!(src.locate("cluster.nodes"), Some((2, 1)));
        assert_eq!(src.locate("cluster.workers[1].tp"), Some((9, 1)));
        assert_eq!(src.locate("workload.response_tokens.median"), Some((12, 41)));
        // A missing field points at its nearest ancestor in the file.
        assert_eq!(src.locate("workload.steps"), Some((11, 2)));
        assert_eq!(src.locate("training.mfu"), None);
        assert_eq!(
            split_path("a.b[2].c"),
            vec![PathSeg::Key("a".into()), PathSeg::Key("b".into()), PathSeg::Index(2), PathSeg::Key("c".into())]
        );
    }
}
