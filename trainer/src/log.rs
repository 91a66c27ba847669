//! A run's log: one JSON object per line in `log.jsonl` of the output folder — training steps
//! (`loss`, `grad_norm`), validation losses (`valid_cap`, `valid_pa`) and evaluations (`eval`),
//! each with its `step`. Appended to, so a resumed run continues it; a step logged twice (work
//! redone after a resume) is read back as its last line. [`crate::plot`] draws it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use cappa::{Error, Result};
use serde_json::Value;

/// File name of the log in a run's output folder.
pub const LOG_FILE: &str = "log.jsonl";

/// An open log, appended to line by line.
pub struct RunLog {
    file: File,
}

impl RunLog {
    /// Opens (creating or appending to) the log at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        Ok(RunLog { file })
    }

    /// Appends one record. A failed write loses the line, never the run: the log is a record
    /// for people, the checkpoint is the state.
    pub fn write(&mut self, record: Value) {
        let _ = writeln!(self.file, "{record}");
    }
}

/// Reads a log: its records in order (lines that are not JSON objects, e.g. one cut short by a
/// crash, are skipped).
pub fn read(path: &Path) -> Result<Vec<Value>> {
    let file = File::open(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    Ok(BufReader::new(file)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter(Value::is_object)
        .collect())
}

/// The series `(step, value)` of `key` (a `/`-separated path into each record, e.g.
/// `eval/word_order` or `eval/greedy/1/exact_match`), in step order, the last record of a step
/// winning.
pub fn series(records: &[Value], key: &str) -> Vec<(u64, f64)> {
    let mut points = std::collections::BTreeMap::new();
    for r in records {
        let Some(step) = r.get("step").and_then(Value::as_u64) else {
            continue;
        };
        let mut v = r;
        let mut found = true;
        for part in key.split('/') {
            let next = match part.parse::<usize>() {
                Ok(i) => v.get(i),
                Err(_) => v.get(part),
            };
            match next {
                Some(n) => v = n,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if let (true, Some(x)) = (found, v.as_f64()) {
            points.insert(step, x);
        }
    }
    points.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_follow_paths_and_keep_the_last_line_of_a_step() {
        let records: Vec<Value> = [
            r#"{"step": 1, "loss": 3.0}"#,
            r#"{"step": 2, "loss": 2.0}"#,
            r#"{"step": 2, "eval": {"greedy": [{"exact_match": 0.5}, {"exact_match": 0.25}]}}"#,
            r#"{"step": 2, "loss": 1.5}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        assert_eq!(series(&records, "loss"), vec![(1, 3.0), (2, 1.5)]);
        assert_eq!(
            series(&records, "eval/greedy/1/exact_match"),
            vec![(2, 0.25)]
        );
        assert!(series(&records, "valid_cap").is_empty());
    }
}
