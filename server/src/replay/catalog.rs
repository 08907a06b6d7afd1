//! The datasets clients may replay: the bundled day plus every `*.twrec` in the configured
//! directory, opened once at start-up (header and block index only). Each dataset's
//! instruments are learned on first use and kept, so a replay starts without scanning.
//! A file that cannot be opened at all (no header) is still listed, with its error, so
//! `GET /datasets` shows why it cannot be replayed.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use tickwire_engine::domain::Instrument;
use tickwire_feeds::recording::Reader;
use tickwire_feeds::replay::{format_rfc3339, learn_instruments};

/// One dataset.
pub struct Dataset {
    pub name: String,
    pub reader: Result<Reader, String>,
    instruments: OnceLock<Result<Arc<Vec<Instrument>>, String>>,
}

impl Dataset {
    fn new(name: String, reader: Result<Reader, String>) -> Dataset {
        Dataset {
            name,
            reader,
            instruments: OnceLock::new(),
        }
    }

    /// The dataset's instruments (learned once).
    pub fn instruments(&self) -> Result<Arc<Vec<Instrument>>, String> {
        self.instruments
            .get_or_init(|| {
                let r = self.reader.as_ref().map_err(Clone::clone)?;
                learn_instruments(r)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
    }

    /// Whether the recording was not closed cleanly or has damaged blocks.
    pub fn damaged(&self) -> bool {
        self.reader.as_ref().map_or(true, |r| {
            let rec = r.recovery();
            !rec.clean_close || !rec.skipped.is_empty() || rec.torn_tail.is_some()
        })
    }

    /// What a client should be told about damage, if any.
    pub fn warning(&self) -> Option<String> {
        let r = self.reader.as_ref().ok()?;
        let rec = r.recovery();
        if !self.damaged() {
            return None;
        }
        let mut parts = Vec::new();
        if !rec.clean_close {
            parts.push("the recording was not closed cleanly (truncated?)".to_string());
        }
        if let Some((_, bytes)) = rec.torn_tail {
            parts.push(format!(
                "{bytes} bytes of an incomplete last block are ignored"
            ));
        }
        if !rec.skipped.is_empty() {
            parts.push(format!("{} damaged regions are skipped", rec.skipped.len()));
        }
        Some(format!(
            "{}; replaying the {} readable blocks",
            parts.join("; "),
            r.blocks().len()
        ))
    }
}

/// `GET /datasets` entry.
#[derive(Serialize)]
pub struct DatasetInfo {
    pub name: String,
    pub adapter: Option<String>,
    pub venue: Option<String>,
    pub symbols: Vec<String>,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub from_time: Option<String>,
    pub to_time: Option<String>,
    pub size_bytes: Option<u64>,
    pub damaged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// See the module documentation.
pub struct Catalog {
    datasets: Vec<Dataset>,
}

impl Catalog {
    /// The bundled day plus the recordings in `dir` (missing directory: none).
    pub fn load(dir: Option<&Path>) -> Catalog {
        let mut datasets = vec![Dataset::new(
            super::bundled::NAME.to_string(),
            super::bundled::reader().map_err(|e| e.to_string()),
        )];
        if let Some(dir) = dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut files: Vec<_> = entries
                        .flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "twrec"))
                        .collect();
                    files.sort();
                    for p in files {
                        let Some(name) = p.file_stem().map(|s| s.to_string_lossy().into_owned())
                        else {
                            continue;
                        };
                        if datasets.iter().any(|d| d.name == name) {
                            // The bundled day's own file in replay-data/: the embedded copy
                            // is the same recording.
                            continue;
                        }
                        let reader = Reader::open(&p).map_err(|e| e.to_string());
                        if let Err(e) = &reader {
                            tracing::warn!(dataset = %name, error = %e, "dataset cannot be read");
                        }
                        datasets.push(Dataset::new(name, reader));
                    }
                }
                Err(e) => {
                    tracing::info!(dir = %dir.display(), error = %e, "no datasets directory; only the bundled day can be replayed");
                }
            }
        }
        Catalog { datasets }
    }

    /// A dataset by name.
    pub fn get(&self, name: &str) -> Option<&Dataset> {
        self.datasets.iter().find(|d| d.name == name)
    }

    /// Every dataset, for `GET /datasets`.
    pub fn list(&self) -> Vec<DatasetInfo> {
        self.datasets
            .iter()
            .map(|d| match &d.reader {
                Ok(r) => {
                    let h = r.header();
                    let range = r.time_range();
                    DatasetInfo {
                        name: d.name.clone(),
                        adapter: Some(h.adapter.clone()),
                        venue: Some(h.venue.clone()),
                        symbols: match d.instruments() {
                            Ok(list) => list.iter().map(|i| i.symbol.clone()).collect(),
                            Err(_) => h.symbols.clone(),
                        },
                        from: range.map(|r| r.0),
                        to: range.map(|r| r.1),
                        from_time: range.map(|r| format_rfc3339(r.0)),
                        to_time: range.map(|r| format_rfc3339(r.1)),
                        size_bytes: Some(r.file_len()),
                        damaged: d.damaged(),
                        warning: d.warning(),
                        error: None,
                    }
                }
                Err(e) => DatasetInfo {
                    name: d.name.clone(),
                    adapter: None,
                    venue: None,
                    symbols: Vec::new(),
                    from: None,
                    to: None,
                    from_time: None,
                    to_time: None,
                    size_bytes: None,
                    damaged: true,
                    warning: None,
                    error: Some(e.clone()),
                },
            })
            .collect()
    }
}
