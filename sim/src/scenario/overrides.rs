//! `--set` overrides applied to the scenario text.

use super::locate::{split_path, syntax_error, PathSeg};
use super::ScenarioError;
use std::path::Path;

/// Applies `key=value` overrides (dotted paths, `name[0]` or `name.0` for an entry of an array of tables) to the
/// scenario text. The value is read as a TOML value (`64`, `0.5`, `true`, `"x"`, `[1, 2]`), or else as a bare
/// string (`colocated`). The file's layout is kept, so later errors still point at its lines.
pub fn apply_overrides(text: &str, file: &Path, overrides: &[String]) -> Result<String, ScenarioError> {
    if overrides.is_empty() {
        return Ok(text.to_string());
    }
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| syntax_error(file, text, &e))?;
    for assignment in overrides {
        let bad = |message: String| ScenarioError::Override { assignment: assignment.clone(), message };
        let (key, raw_value) =
            assignment.split_once('=').ok_or_else(|| bad("expected KEY=VALUE, e.g. pipeline.type=colocated".into()))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(bad("the key is empty; expected a dotted path such as workload.prompts_per_step".into()));
        }
        let raw_value = raw_value.trim();
        let value: toml_edit::Value = raw_value.parse().unwrap_or_else(|_| toml_edit::Value::from(raw_value));
        let segs = split_path(key);
        if segs.is_empty() {
            return Err(bad("the key names no field; expected a dotted path such as workload.prompts_per_step".into()));
        }
        set_in(doc.as_table_mut(), &segs, value).map_err(bad)?;
    }
    Ok(doc.to_string())
}

fn set_in(table: &mut dyn toml_edit::TableLike, segs: &[PathSeg], value: toml_edit::Value) -> Result<(), String> {
    use toml_edit::{Item, Table};
    let PathSeg::Key(k) = &segs[0] else { return Err("each part of the path before an index must be a key".into()) };
    if segs.len() == 1 {
        table.insert(k, Item::Value(value));
        return Ok(());
    }
    if table.get(k).is_none() {
        let mut t = Table::new();
        t.set_implicit(true);
        table.insert(k, Item::Table(t));
    }
    let child = table.get_mut(k).expect("inserted above");
    match (&segs[1], child) {
        (PathSeg::Index(i), Item::ArrayOfTables(a)) => {
            let n = a.len();
            let t = a.get_mut(*i).ok_or_else(|| format!("`{k}` has {n} entries; index {i} is out of range"))?;
            if segs.len() == 2 {
                return Err(format!("`{k}[{i}]` is a table; name one of its fields"));
            }
            set_in(t, &segs[2..], value)
        }
        (PathSeg::Index(_), _) => Err(format!("`{k}` is not an array of tables")),
        (PathSeg::Key(_), item) => match item.as_table_like_mut() {
            Some(t) => set_in(t, &segs[1..], value),
            None => Err(format!("`{k}` is a value, not a table")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const TEXT: &str = "name = \"t\"\n\n[cluster]\nnodes = 1\n\n[[cluster.workers]]\nname = \"a\"\ncount = 2\n\n[[cluster.workers]]\nname = \"b\"\ntags = [\"train\"]\n";

    #[test]
    fn overrides_set_nested_fields_array_entries_and_new_tables() {
        let file = Path::new("t.toml");
        let sets = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let out = apply_overrides(
            TEXT,
            file,
            &sets(&[
                "cluster.nodes=4",
                "cluster.workers[1].count=3",
                "cluster.workers.0.tp=2",
                "pipeline.type=colocated",
                "seed=9",
            ]),
        )
        .unwrap();
        let v: toml::Table = toml::from_str(&out).unwrap();
        assert_eq!(v["cluster"]["nodes"].as_integer(), Some(4));
        assert_eq!(v["cluster"]["workers"][1]["count"].as_integer(), Some(3));
        assert_eq!(v["cluster"]["workers"][0]["tp"].as_integer(), Some(2));
        assert_eq!(v["pipeline"]["type"].as_str(), Some("colocated"));
        assert_eq!(v["seed"].as_integer(), Some(9));
        // Replacing a value keeps the file's lines where they were, so errors still point at the user's lines.
        let replaced = apply_overrides(TEXT, file, &sets(&["cluster.nodes=4"])).unwrap();
        assert_eq!(replaced.lines().count(), TEXT.lines().count());
        assert_eq!(replaced.lines().nth(3), Some("nodes = 4"));
        let err = apply_overrides(TEXT, file, &sets(&["cluster.workers[5].count=1"])).unwrap_err().to_string();
        assert!(err.contains("`workers` has 2 entries; index 5 is out of range"), "{err}");
        let err = apply_overrides(TEXT, file, &sets(&["name.x=1"])).unwrap_err().to_string();
        assert!(err.contains("`name` is a value, not a table"), "{err}");
    }
}
