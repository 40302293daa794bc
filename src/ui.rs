//! Where the CLI's words go: results on stdout (a table, or with `--json` one JSON document), status lines and
//! progress bars on stderr (none with `--quiet`), errors always on stderr.

use anyhow::Result;
use serde_json::Value;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

/// The global output flags (`--json`, `--quiet`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Mode {
    pub json: bool,
    pub quiet: bool,
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// Sets the mode once, before any output (later calls are ignored).
pub fn init(mode: Mode) {
    let _ = MODE.set(mode);
}

pub fn mode() -> Mode {
    MODE.get().copied().unwrap_or_default()
}

/// Writes to stdout; a closed pipe (`rlsim … | head`) ends the program quietly instead of panicking.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to stdout: {e}");
        std::process::exit(1);
    }
}

/// A result as text: on stdout, unless `--json` asked for the JSON document instead.
pub fn text(text: &str) {
    if !mode().json {
        emit(text);
    }
}

/// The result as one JSON document on stdout with `--json` (built only then). Objects keep their fields' order.
pub fn json<T: serde::Serialize>(value: impl FnOnce() -> Result<T>) -> Result<()> {
    if mode().json {
        emit(&(serde_json::to_string_pretty(&value()?)? + "\n"));
    }
    Ok(())
}

/// A JSON object whose keys keep the order they were added in (serde_json's own map sorts them), e.g. a CSV row
/// keyed by its header.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Object(pub Vec<(String, Value)>);

impl serde::Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A status line ("wrote …", "note: …", "skipped …") on stderr, unless `--quiet`.
pub fn status(line: impl std::fmt::Display) {
    if !mode().quiet {
        eprintln!("{line}");
    }
}

/// Whether progress may be drawn: stderr is a terminal and `--quiet` was not given.
fn draws() -> bool {
    !mode().quiet && std::io::stderr().is_terminal()
}

/// A progress bar over `len` items on stderr (hidden when it would not be seen, or with `--quiet`).
pub fn progress(len: usize, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    if !draws() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    // `wide_msg` takes what the line has left, so a long message never wraps the bar onto two lines.
    let template = format!("{{bar:30}} {{pos}}/{{len}} {unit} ({{elapsed}}, ~{{eta}} left) {{wide_msg}}");
    bar.set_style(
        indicatif::ProgressStyle::with_template(&template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

/// A spinner with the elapsed time, for work whose length is not known ahead (a real run, a profile).
pub fn spinner(message: impl Into<String>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if draws() {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message(message.into());
    bar
}

/// A CSV cell as the JSON value it spells: a whole or decimal number, `true`/`false`, else the text itself (also for
/// `NaN`/`inf`, which JSON cannot hold as numbers).
pub fn typed(cell: &str) -> Value {
    if let Ok(n) = cell.parse::<i64>() {
        return n.into();
    }
    if let Ok(n) = cell.parse::<u64>() {
        return n.into();
    }
    match cell {
        "true" => return true.into(),
        "false" => return false.into(),
        _ => {}
    }
    if let Some(n) = cell.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
        // "1e5" and "0.5" are numbers; "inf" and "NaN" parse as f64 but have no JSON number.
        if cell.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
            return Value::Number(n);
        }
    }
    Value::String(cell.to_string())
}

/// A CSV file's rows as JSON objects keyed by its header in column order, values typed (`typed`), in file order.
pub fn csv_rows(path: &std::path::Path) -> Result<Vec<Object>> {
    use anyhow::Context;
    let mut r = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header = r.headers().with_context(|| format!("reading {}", path.display()))?.clone();
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.with_context(|| format!("reading {}", path.display()))?;
        rows.push(Object(header.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), typed(v))).collect()));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_become_the_json_they_spell() {
        assert_eq!(typed("64"), Value::from(64));
        assert_eq!(typed("-3"), Value::from(-3));
        assert_eq!(typed("0.25"), Value::from(0.25));
        assert_eq!(typed("1e3"), Value::from(1000.0));
        assert_eq!(typed("true"), Value::from(true));
        assert_eq!(typed("colocated"), Value::from("colocated"));
        assert_eq!(typed("NaN"), Value::from("NaN"));
        assert_eq!(typed("inf"), Value::from("inf"));
        assert_eq!(typed(""), Value::from(""));
        assert_eq!(typed("18446744073709551615"), Value::from(u64::MAX));
    }

    #[test]
    fn objects_keep_their_key_order() {
        let o = Object(vec![("b".into(), 1.into()), ("a".into(), "x".into())]);
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"b":1,"a":"x"}"#);
    }
}
