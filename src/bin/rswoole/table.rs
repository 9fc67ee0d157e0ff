//! `rswoole table list|dump|rm`: inspect persistent shared-memory tables
//! (the `/dev/shm/rswoole.<name>` segments made by
//! `Table::builder(..).persistent(name)`).

use std::io::{self, BufWriter, Write};

use anyhow::{Context, Result};
use rswoole_shm::persistent;

/// `rswoole table ...` subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum TableCmd {
    /// List persistent tables: name, rows used/capacity, size, columns.
    List,
    /// Print every row of a table as JSON lines: {"key": ..., <column>: <value>, ...}.
    ///
    /// Strings that are not UTF-8 are printed with U+FFFD replacements;
    /// NaN and infinite floats, which JSON cannot hold, as null. If the
    /// table has a column called "key", the row key is printed as "_key".
    Dump {
        /// Table name, as shown by `rswoole table list`.
        name: String,
    },
    /// Remove a persistent table. Running processes that have it open keep
    /// their copy until they exit; the next build creates a fresh table.
    Rm {
        /// Table name, as shown by `rswoole table list`.
        name: String,
    },
}

/// Runs one `rswoole table` subcommand.
pub(crate) fn run(cmd: TableCmd) -> Result<()> {
    match cmd {
        TableCmd::List => list(),
        TableCmd::Dump { name } => match dump(&name) {
            Err(e) if is_broken_pipe(&e) => Ok(()),
            other => other,
        },
        TableCmd::Rm { name } => {
            persistent::remove(&name).with_context(|| format!("removing table `{name}`"))?;
            println!("removed {}", persistent::path(&name).display());
            Ok(())
        }
    }
}

fn list() -> Result<()> {
    let names = persistent::list().context("listing persistent tables")?;
    if names.is_empty() {
        println!("no persistent tables in {}", persistent::SHM_DIR);
        return Ok(());
    }
    println!(
        "{:<24} {:>21} {:>10}  COLUMNS",
        "NAME", "ROWS USED/CAPACITY", "SIZE"
    );
    for name in names {
        match persistent::info(&name) {
            Ok(info) => {
                let columns: Vec<String> = info
                    .columns
                    .iter()
                    .map(|(n, c)| format!("{n} {c}"))
                    .collect();
                println!(
                    "{:<24} {:>21} {:>10}  {}",
                    info.name,
                    format!("{}/{}", info.count, info.capacity),
                    human_size(info.memory_size),
                    columns.join(", ")
                );
            }
            // Still list a broken segment, so it can be found and removed.
            Err(e) => println!("{name:<24} unusable: {e}"),
        }
    }
    Ok(())
}

fn dump(name: &str) -> Result<()> {
    let table = persistent::open(name).with_context(|| format!("opening table `{name}`"))?;
    let key_field = if table.columns().any(|(c, _)| c == "key") {
        "_key"
    } else {
        "key"
    };
    let mut out = BufWriter::new(io::stdout().lock());
    for (key, row) in &table {
        let mut obj = serde_json::Map::new();
        obj.insert(
            key_field.to_owned(),
            serde_json::Value::String(String::from_utf8_lossy(&key).into_owned()),
        );
        obj.extend(row.to_json());
        writeln!(out, "{}", serde_json::Value::Object(obj))?;
    }
    out.flush()?;
    Ok(())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn human_size(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit + 1 < UNITS.len() {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{size:.1} {}", UNITS[unit])
    }
}
