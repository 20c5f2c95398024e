use std::io::Write;

use berth::state::Store;

pub fn run(store: &Store, format: &str, quiet: bool) -> anyhow::Result<i32> {
    let containers = berth::container::list(store)?;
    // One write for the whole table, not one per line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if quiet {
        for (rec, _) in &containers {
            writeln!(out, "{}", rec.id)?;
        }
    } else if format == "json" {
        let all: Vec<_> = containers.iter().map(|(r, s)| r.public(*s)).collect();
        writeln!(out, "{}", serde_json::to_string(&all)?)?;
    } else {
        writeln!(out, "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED")?;
        for (rec, status) in &containers {
            let p = rec.public(*status);
            writeln!(
                out,
                "{:<12} {:<10} {:<10} {:<40} {:<30} {}",
                p.id,
                p.pid,
                status,
                rec.bundle.display(),
                rec.created,
                rec.owner
            )?;
        }
    }
    out.flush()?;
    Ok(0)
}
